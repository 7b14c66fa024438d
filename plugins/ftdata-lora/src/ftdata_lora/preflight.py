"""Preflight: tokenize every example with the training template and report what training would see.

TRL truncates examples to `max_length` (keeping the start) and silently drops those left without a
trained token. Preflight counts them per split, with token lengths, so a user sees them before a run:
`over_max_length` examples are cut at the end, `trained_tokens_cut` of those lose part (not all) of
their trained tokens, and `fully_masked` ones would train nothing (`truncation_masked`: the prompt alone fills
`max_length`; `no_trained_tokens`: every assistant message has `weight: 0`). Rows the template cannot
render (`render_error`), or that an ftdata-built template renders differently from the model's own
(`template_mismatch`), stop a run: they are listed with their line in the split file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

from ftdata_lora.encoding import Encoded, EncodeError, encode_chat, mask_spans
from ftdata_lora.templates import TrainingTemplate, renders_like_original

BLOCKING = ("render_error", "template_mismatch")
DROPPED = ("truncation_masked", "no_trained_tokens")
PROBLEMS_SHOWN = 5


@dataclass
class SplitPreflight:
    name: str
    max_length: int
    encoded: list[Encoded | None] = field(default_factory=list)  # None: row unusable (see `excluded`)
    excluded: dict[str, list[int]] = field(default_factory=dict)  # reason -> 1-based lines of the split file
    messages: dict[int, str] = field(default_factory=dict)  # line -> why it could not be rendered

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.encoded if e is not None]

    def trainable(self) -> list[Encoded]:
        """What SFTTrainer will actually train on (the rows it would otherwise drop silently are left out)."""
        dropped = {line for reason in DROPPED for line in self.excluded.get(reason, [])}
        return [e for line, e in enumerate(self.encoded, start=1) if e is not None and line not in dropped]

    def blocking(self) -> dict[str, list[int]]:
        return {reason: lines for reason, lines in self.excluded.items() if reason in BLOCKING and lines}

    def as_dict(self) -> dict[str, Any]:
        lengths = sorted(self.lengths)
        usable = [e for e in self.encoded if e is not None]
        over = [e for e in usable if len(e.input_ids) > self.max_length]
        return {
            "examples": len(self.encoded),
            "tokens": _stats(lengths),
            "max_length": self.max_length,
            "over_max_length": len(over),
            "trained_tokens_cut": sum(1 for e in over if 0 < e.trained_within(self.max_length) < e.trained_tokens),
            "fully_masked": {reason: len(self.excluded.get(reason, [])) for reason in DROPPED},
            "trained_tokens": sum(e.trained_within(self.max_length) for e in self.trainable()),
            "trainable_examples": len(self.trainable()),
            "blocking": {reason: len(lines) for reason, lines in self.blocking().items()},
            "problems": [
                {"line": line, "reason": reason, "detail": self.messages.get(line, "")}
                for reason, lines in sorted(self.blocking().items()) for line in lines[:PROBLEMS_SHOWN]
            ],
        }


@dataclass
class Preflight:
    template_source: str
    max_length: int
    splits: dict[str, SplitPreflight]
    example: list[dict[str, Any]]  # one rendered example: segments of text, trained or not, cut or not
    stop_token_trained: bool

    def blocking_problems(self) -> list[str]:
        out = []
        for name, split in self.splits.items():
            for reason, lines in sorted(split.blocking().items()):
                shown = ", ".join(str(n) for n in lines[:PROBLEMS_SHOWN])
                shown += " ..." if len(lines) > PROBLEMS_SHOWN else ""
                detail = split.messages.get(lines[0], "")
                rows = f"{len(lines)} row{'s' if len(lines) != 1 else ''}"
                out.append(f"{name}: {rows} {reason} (line {shown}){': ' + detail if detail else ''}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "template": self.template_source,
            "stop_token_trained": self.stop_token_trained,
            "max_length": self.max_length,
            "splits": {name: split.as_dict() for name, split in self.splits.items()},
            "example": self.example,
        }


def preflight_split(name: str, rows: Any, tokenizer: Any, template: TrainingTemplate,
                    max_length: int) -> SplitPreflight:
    """`rows`: a `datasets.Dataset` (or list of dicts) with `messages` (and optionally `tools`)."""
    report = SplitPreflight(name=name, max_length=max_length)
    for line, row in enumerate(rows, start=1):
        messages, tools = row["messages"], row.get("tools")
        reason = None
        try:
            encoded: Encoded | None = encode_chat(tokenizer, template, messages, tools)
        except EncodeError as exc:
            encoded, reason = None, "render_error"
            report.messages[line] = str(exc)
        if encoded is not None and not renders_like_original(tokenizer, template, messages, tools):
            encoded, reason = None, "template_mismatch"
            report.messages[line] = "ftdata's marked template renders this example differently from the model's"
        if encoded is not None and encoded.trained_tokens == 0:
            reason = "no_trained_tokens"
        elif encoded is not None and encoded.trained_within(max_length) == 0:
            reason = "truncation_masked"
        if reason is not None:
            report.excluded.setdefault(reason, []).append(line)
        report.encoded.append(encoded)
    return report


def run_preflight(dataset_dict: Any, tokenizer: Any, template: TrainingTemplate, max_length: int) -> Preflight:
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    splits = {
        name: preflight_split(name, dataset, tokenizer, template, max_length)
        for name, dataset in dataset_dict.items()
        if name in ("train", "validation")
    }
    train = splits.get("train")
    return Preflight(
        template_source=template.source,
        max_length=max_length,
        splits=splits,
        example=marked_example(tokenizer, dataset_dict["train"], train, max_length) if train else [],
        stop_token_trained=is_chat_template_stop_token_trained(tokenizer, chat_template=template.text),
    )


def marked_example(tokenizer: Any, rows: Any, report: SplitPreflight, max_length: int) -> list[dict[str, Any]]:
    """The first train example with a `weight: 0` message (else the first usable one), as text segments."""
    candidates = [(i, e) for i, e in enumerate(report.encoded) if e is not None]
    if not candidates:
        return []
    weighted = [(i, e) for i, e in candidates if any(m.get("weight") == 0 for m in rows[i]["messages"])]
    _, encoded = (weighted or candidates)[0]
    return segments(tokenizer, encoded, max_length)


def segments(tokenizer: Any, encoded: Encoded, max_length: int) -> list[dict[str, Any]]:
    """Split an example into runs of (trained, cut-by-truncation) tokens, each decoded as one piece of text."""
    bounds = {0, len(encoded.input_ids), min(max_length, len(encoded.input_ids))}
    for start, end in mask_spans(encoded.assistant_masks):
        bounds.update((start, end))
    edges = sorted(bounds)
    out = []
    for start, end in zip(edges, edges[1:], strict=False):
        if start == end:
            continue
        out.append({
            "text": tokenizer.decode(encoded.input_ids[start:end]),
            "trained": bool(encoded.assistant_masks[start]),
            "cut": start >= max_length,
            "tokens": end - start,
        })
    return out


def _stats(lengths: list[int]) -> dict[str, int | float]:
    if not lengths:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "total": 0}
    p95 = lengths[min(len(lengths) - 1, round(0.95 * (len(lengths) - 1)))]
    return {"min": lengths[0], "median": median(lengths), "p95": p95, "max": lengths[-1], "total": sum(lengths)}
