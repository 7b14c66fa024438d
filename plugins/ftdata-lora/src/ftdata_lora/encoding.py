"""Tokenize a chat example with its loss mask: assistant tokens only, minus `weight: 0` messages.

TRL's `assistant_only_loss` trains every assistant message; OpenAI-format data can exclude one with
`weight: 0`. So we tokenize ourselves: the marked template gives one span of assistant tokens per
assistant message (`return_assistant_tokens_mask=True`), the spans are matched to the assistant messages
in order, and the spans of weight-0 messages are cleared. The result (`input_ids` + `assistant_masks`) is
a pre-tokenized dataset that SFTTrainer turns into labels (-100 outside the mask), truncates to
`max_length` (keeping the start) and filters (dropping examples left without trained tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftdata_lora.templates import TrainingTemplate


class EncodeError(ValueError):
    """This example cannot be tokenized with a trustworthy loss mask; the message says why."""


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 = the token is trained on

    @property
    def trained_tokens(self) -> int:
        return sum(self.assistant_masks)

    def trained_within(self, max_length: int) -> int:
        return sum(self.assistant_masks[:max_length])


def mask_spans(mask: list[int]) -> list[tuple[int, int]]:
    """[start, end) runs of 1s."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, bit in enumerate(mask):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(mask)))
    return spans


def encode_chat(tokenizer: Any, template: TrainingTemplate, messages: list[dict[str, Any]],
                tools: list[dict[str, Any]] | None = None) -> Encoded:
    try:
        out = tokenizer.apply_chat_template(
            messages, tools=tools, chat_template=template.text, tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True,
        )
    except Exception as exc:  # noqa: BLE001 - Jinja raises many types; the row is reported, not the run crashed
        raise EncodeError(f"the chat template cannot render this example: {type(exc).__name__}: {exc}") from None
    input_ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])

    weights = [message.get("weight", 1) for message in messages if message.get("role") == "assistant"]
    spans = mask_spans(mask)
    if any(w == 1 for w in weights) and not spans:
        raise EncodeError(
            "the chat template marks no assistant tokens in this example, so there is nothing to train on "
            "(its {% generation %} markers do not cover the assistant messages)"
        )
    if any(w == 0 for w in weights):
        if len(spans) != len(weights):
            raise EncodeError(
                f"the chat template marks {len(spans)} assistant spans for {len(weights)} assistant messages, so "
                "the weight: 0 messages cannot be located"
            )
        for (start, end), weight in zip(spans, weights, strict=True):
            if weight == 0:
                mask[start:end] = [0] * (end - start)
    return Encoded(input_ids, mask)
