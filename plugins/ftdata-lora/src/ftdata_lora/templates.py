"""Chat templates with `{% generation %}` markers, so the loss covers assistant tokens only.

transformers computes the assistant-token mask (`return_assistant_tokens_mask=True`) from the spans a
chat template marks with `{% generation %}` ... `{% endgeneration %}`; most models ship templates without
them. In order of preference a run uses: a template given with `-o chat_template=FILE`, the model's own
template when it already has markers, TRL's training version of a known family's template, or the marked
ChatML template below when the model's template is ChatML (SmolLM/SmolLM2, Qwen2 without tools, ...):
it is used only after rendering a set of probe conversations byte-identically to the model's own
template, so the text the model trains on is the text it sees at inference. Otherwise the run stops: it
never falls back to training on prompt tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ChatML with the assistant's content and its <|im_end|> marked: the model learns to answer and to stop;
# the role header before and the newline after are template glue, as at inference.
# DEFAULT_SYSTEM is replaced by the model template's default system prompt (a Jinja string literal, or
# none when the model's template adds no system message of its own).
CHATML_MARKED = """\
{%- set default_system = DEFAULT_SYSTEM -%}
{%- for message in messages -%}
{%- if loop.first and messages[0]['role'] != 'system' and default_system is not none -%}
{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' -}}
{%- endif -%}
{{- '<|im_start|>' + message['role'] + '\\n' -}}
{%- if message['role'] == 'assistant' -%}
{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}
{{- '\\n' -}}
{%- else -%}
{{- message['content'] + '<|im_end|>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}
"""

PROBE = "ftdata probe text"
# Conversations the marked ChatML template must render exactly as the model's own template does.
PROBES: tuple[tuple[list[dict[str, str]], bool], ...] = (
    ([{"role": "user", "content": "Hello?"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}], False),
    (
        [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "a\nb"},
            {"role": "assistant", "content": " spaced "},
            {"role": "user", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ],
        False,
    ),
)
_CHATML_WITH_SYSTEM = re.compile(
    r"<\|im_start\|>system\n(?P<system>.*?)<\|im_end\|>\n<\|im_start\|>user\n" + re.escape(PROBE) + r"<\|im_end\|>\n",
    re.DOTALL,
)


class TemplateError(RuntimeError):
    """No chat template with `{% generation %}` markers could be found or built for this model."""


@dataclass(frozen=True)
class TrainingTemplate:
    text: str
    source: str  # "option:<path>" | "model" | "trl" | "ftdata-chatml"


def has_generation_markers(template: str) -> bool:
    return re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def model_template(tokenizer: Any) -> str | None:
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    return template


def training_template(tokenizer: Any, override: str | None = None) -> TrainingTemplate:
    """The marked template a run trains with (see the module docstring for the order)."""
    if override is not None:
        path = Path(override)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"-o chat_template={override}: {exc.strerror or exc}") from None
        if not has_generation_markers(text):
            raise TemplateError(f"{path}: no {{% generation %}} markers around the assistant's output")
        return TrainingTemplate(text, f"option:{path}")
    original = model_template(tokenizer)
    if not original:
        raise TemplateError("the model's tokenizer has no chat template; pass -o chat_template=FILE.jinja")
    if has_generation_markers(original):
        return TrainingTemplate(original, "model")
    trl_template = _trl_training_template(tokenizer)
    if trl_template is not None:
        return TrainingTemplate(trl_template, "trl")
    chatml = marked_chatml_for(tokenizer, original)
    if chatml is not None:
        return TrainingTemplate(chatml, "ftdata-chatml")
    raise TemplateError(
        "the model's chat template has no {% generation %} markers, TRL has no training version of it, and it "
        "is not ChatML, so the assistant tokens cannot be told apart from the prompt; pass "
        "-o chat_template=FILE.jinja: a copy of the model's template with {% generation %}...{% endgeneration %} "
        "around each assistant message's content and end-of-turn token"
    )


def _trl_training_template(tokenizer: Any) -> str | None:
    from jinja2 import TemplateError as JinjaTemplateError
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except (ValueError, TypeError, JinjaTemplateError):  # a template TRL does not know (or cannot probe)
        return None


def marked_chatml_for(tokenizer: Any, original: str) -> str | None:
    """The marked ChatML template with the model's default system prompt, if it renders like `original`."""
    try:
        bare = _render(tokenizer, original, [{"role": "user", "content": PROBE}], False)
    except Exception:  # noqa: BLE001 - any template failure means "not ChatML as we know it"
        return None
    if bare == f"<|im_start|>user\n{PROBE}<|im_end|>\n":
        default_system = "none"
    elif match := _CHATML_WITH_SYSTEM.fullmatch(bare):
        default_system = _jinja_string(match["system"])
    else:
        return None
    candidate = CHATML_MARKED.replace("DEFAULT_SYSTEM", default_system, 1)
    for messages, add_generation_prompt in PROBES:
        try:
            if _render(tokenizer, candidate, messages, add_generation_prompt) != _render(
                tokenizer, original, messages, add_generation_prompt
            ):
                return None
        except Exception:  # noqa: BLE001
            return None
    return candidate


def renders_like_original(tokenizer: Any, template: TrainingTemplate, messages: list[dict[str, Any]],
                          tools: list[dict[str, Any]] | None = None) -> bool:
    """Whether an ftdata-built template renders this conversation exactly as the model's own does."""
    if template.source != "ftdata-chatml":
        return True
    original = model_template(tokenizer)
    try:
        expected = _render(tokenizer, original, messages, False, tools)
    except Exception:  # noqa: BLE001 - the original cannot render it at all: nothing to differ from
        return True
    return _render(tokenizer, template.text, messages, False, tools) == expected


def _render(tokenizer: Any, template: str | None, messages: list[dict[str, Any]], add_generation_prompt: bool,
            tools: list[dict[str, Any]] | None = None) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _jinja_string(text: str) -> str:
    """A Jinja string literal for `text` (Jinja unescapes literals the way Python does)."""
    return repr(text)
