"""Prompt templates for synthetic examples, and the parsing of what comes back.

Two prompt shapes, picked by what the generator can do:

- structured (an API model that follows instructions and can be asked for JSON): one request per example,
  the reply is a JSON object `{"user": ..., "assistant": ...}` (paraphrase: `{"user": ...}`).
- plain (a small local model): instructions alone do not work at 135M parameters (SmolLM2 answers a
  "write a new question like these" request with commentary about the request), but a few-shot pattern in
  chat form does. Pass 1 shows the seed user messages as earlier assistant turns of a "write a new
  message" exchange, so the next turn is a new message in the same style; pass 2 replays the seeds as
  real conversation turns under the opening of the seeds' own system prompt and a one-line length rule,
  so the reply to the new message comes in the seeds' style. Both replies are plain text: nothing to
  parse but whitespace and stray labels.

Plain prompts are kept short: on a CPU, reading the prompt is most of a batch's time (a batch of 32
prompts of 400 tokens is 12,800 tokens to read before the first reply token), so pass 2 shows the system
prompt only up to PLAIN_SYSTEM_CHARS, cut at a sentence end.

TEMPLATE_VERSION is recorded with every synthetic row; bump it whenever any text below changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

TEMPLATE_VERSION = "2"

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class SeedExample:
    """The first exchange of a real chat row, the part a synthetic example imitates."""

    row_id: str
    system: str | None
    user: str
    assistant: str
    label: str | None


def text_of(content: Any) -> str | None:
    """Message content as text: a string, or the text parts of a content-part list; None otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)  # type: ignore[arg-type]
    return None


def seed_from_record(row_id: str, record: Any, label: str | None) -> SeedExample | None:
    """A usable seed, or None for rows that cannot show the pattern (no user/assistant text exchange,
    tool calls: inventing tool calls and their results is out of scope)."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or record.get("tools"):
        return None
    system = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return None
        role = message.get("role")
        if role == "system" and system is None and index == 0:
            system = text_of(message.get("content"))
        elif role == "user":
            reply = messages[index + 1] if index + 1 < len(messages) else None
            if not isinstance(reply, dict) or reply.get("role") != "assistant" or reply.get("tool_calls"):
                return None
            user, assistant = text_of(message.get("content")), text_of(reply.get("content"))
            if not user or not assistant or not user.strip() or not assistant.strip():
                return None
            return SeedExample(row_id, system, user.strip(), assistant.strip(), label)
        else:
            return None
    return None


def example_record(system: str | None, user: str, assistant: str) -> dict[str, Any]:
    """The training example a synthetic row holds: same system prompt as its seeds, one exchange."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


def _topic(label: str | None) -> str:
    return f" about {label}" if label else ""


def _system_block(system: str | None) -> str:
    return f"The assistant runs with this system prompt:\n<<<\n{system}\n>>>\n\n" if system else ""


# --- structured: one JSON reply per example -------------------------------------------------------------

STRUCTURED_SYSTEM = (
    "You write training examples for fine-tuning a chat assistant. Each example is one user message and "
    "the reply the assistant should give. You reply with one JSON object and nothing else."
)


def self_instruct_structured(seeds: list[SeedExample], label: str | None) -> Messages:
    shown = "\n".join(orjson.dumps({"user": s.user, "assistant": s.assistant}).decode() for s in seeds)
    prompt = (
        f"{_system_block(seeds[0].system)}"
        f"Here are {len(seeds)} real examples{_topic(label)}, one JSON object per line:\n{shown}\n\n"
        f"Write one new example{_topic(label)}: a realistic user message that differs from all of these "
        "in what it asks, and the reply the assistant should give, in the same style, tone, language and "
        'length as the examples. Reply with only a JSON object: {"user": "...", "assistant": "..."}'
    )
    return [{"role": "system", "content": STRUCTURED_SYSTEM}, {"role": "user", "content": prompt}]


def paraphrase_structured(seed: SeedExample) -> Messages:
    prompt = (
        "Rewrite the user message below so that it asks for exactly the same thing in different words: "
        "change the phrasing and sentence structure, keep the intent, every detail that matters for the "
        "answer, the tone and the language.\n\n"
        f"User message:\n<<<\n{seed.user}\n>>>\n\n"
        'Reply with only a JSON object: {"user": "..."}'
    )
    return [{"role": "system", "content": STRUCTURED_SYSTEM}, {"role": "user", "content": prompt}]


# --- plain: few-shot chat patterns for small models ----------------------------------------------------

PLAIN_WRITER_SYSTEM = "You write realistic messages that people send to an assistant."


def _ask_for_message(label: str | None) -> str:
    return f"Write a new message{_topic(label)}."


def self_instruct_question(seeds: list[SeedExample], label: str | None) -> Messages:
    """Pass 1: the seeds' user messages as answers to "write a new message"; the model writes the next.

    The seeds' system prompt stays out: the examples set the domain, and on CPU every prompt token of a
    batch costs time (a support system prompt is often longer than the three questions together).
    """
    messages: Messages = [{"role": "system", "content": PLAIN_WRITER_SYSTEM}]
    for seed in seeds:
        messages += [
            {"role": "user", "content": _ask_for_message(label)},
            {"role": "assistant", "content": seed.user},
        ]
    messages.append({"role": "user", "content": _ask_for_message(label)})
    return messages


PLAIN_SYSTEM_CHARS = 400


def opening(text: str, limit: int) -> str:
    """The first sentences of `text` that fit in `limit` characters (at least the first `limit` characters)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(". "), head.rfind(".\n"), head.rfind("? "), head.rfind("! "))
    return head[:cut + 1] if cut > 0 else head


def self_instruct_answer(seeds: list[SeedExample], question: str, sentences: int | None) -> Messages:
    """Pass 2: the seeds as earlier turns of a real conversation, then the new message to answer.

    The system turn is the opening of the seeds' system prompt (the product and the assistant's role)
    and, when `sentences` is set, a rule to reply in at most that many sentences.
    """
    rule = f"Reply in at most {sentences} sentence{'' if sentences == 1 else 's'}." if sentences else ""
    system = "\n\n".join(part for part in (opening(seeds[0].system or "", PLAIN_SYSTEM_CHARS), rule) if part)
    messages: Messages = [{"role": "system", "content": system}] if system else []
    for seed in seeds:
        messages += [{"role": "user", "content": seed.user}, {"role": "assistant", "content": seed.assistant}]
    messages.append({"role": "user", "content": question})
    return messages


def paraphrase_plain(seed: SeedExample) -> Messages:
    return [
        {"role": "system", "content": "You rewrite messages in different words and keep their meaning."},
        {"role": "user", "content": f"Rewrite this message in different words:\n\n{seed.user}"},
    ]


# --- parsing replies ------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
# A label a small model puts before the message it was asked for ("Message: ...", "New message: ...").
_LEADING_LABEL = re.compile(
    r"^(?:new |rewritten |customer |user )?(?:message|question|user|customer|rewrite|rewritten message)\s*:\s*",
    re.IGNORECASE,
)
_QUOTES = ('"', "“", "”", "'")


class UnparseableOutput(ValueError):
    """The reply does not hold what was asked for; the message says what is wrong."""


def parse_json_fields(text: str, fields: tuple[str, ...]) -> dict[str, str]:
    """The string fields of the JSON object a structured reply should be (code fences tolerated)."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnparseableOutput(f"reply is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise UnparseableOutput(f"reply is JSON {type(obj).__name__}, not an object")
    out = {}
    for name in fields:
        value = obj.get(name)
        if not isinstance(value, str) or not value.strip():
            problem = "missing" if value is None else "empty" if isinstance(value, str) else "not a string"
            raise UnparseableOutput(f"field {name!r} is {problem} (keys: {', '.join(map(str, obj)) or 'none'})")
        out[name] = value.strip()
    return out


def clean_plain_reply(text: str) -> str:
    """A plain reply with stray labels and wrapping quotes removed; UnparseableOutput when nothing is left."""
    body = _LEADING_LABEL.sub("", text.strip(), count=1).strip()
    if len(body) >= 2 and body[0] in _QUOTES and body[-1] in _QUOTES and not any(q in body[1:-1] for q in _QUOTES):
        body = body[1:-1].strip()
    # A lone quote at either end (the model closed a quote it never opened).
    for quote in _QUOTES:
        if body.count(quote) == 1 and (body.startswith(quote) or body.endswith(quote)):
            body = body.strip(quote).strip()
    if not body:
        raise UnparseableOutput("reply is empty")
    return body
