"""Row stages: stages whose work is one parsed record at a time (normalize, validate).

Such a stage gives a `RowOp` factory as well as its frame `run`. The pipeline fuses the row stages at the
head of a recipe into ingest: each record is changed or checked right after it is parsed and mapped, in
the reader's worker processes, and serialised once. Run over a frame instead, every row would be parsed
again per stage, in one process, and a changed record column would exist twice; at 1M rows that was
11 s and a 2 GB copy.

Both paths call the same op on the same parsed record (ingest hands over the mapped object before it is
serialised, the frame path parses RECORD), so a recipe gives the same rows, rejects and stats either
way; tests hold the two paths to that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import polars as pl

from ftdata import frame as F

# What `RowOp.apply` returns: False kept as is, True kept and changed in place, or (reason, detail) rejected.
Verdict = bool | tuple[str, str]
CHUNK_ROWS = 20_000


class RowOp(Protocol):
    def apply(self, record: Any, kind: str) -> Verdict:
        """Look at (and maybe change, in place) one parsed record of KIND `kind`."""
        ...

    def unparsable(self, text: str | None) -> tuple[str, str] | None:
        """What to do with a RECORD that is missing or not JSON (frames only: ingest never makes one)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts so far: nested dicts of ints, summed across workers (`merge_stats`)."""
        ...

    def undo(self) -> None:
        """Take the last `apply` back out of the counts (its record could not be serialised after all)."""
        ...


@dataclass(frozen=True)
class RowStep:
    """A row stage as a worker process needs it: module-level factory (pickled by reference) + config."""

    stage: str
    factory: Callable[[Any], RowOp]
    config: Any


class RowRunner:
    """Applies row steps in order to each record; the first step that rejects a record ends its run."""

    def __init__(self, steps: Sequence[RowStep]) -> None:
        self.steps = list(steps)
        self.ops = [(step.stage, step.factory(step.config)) for step in self.steps]
        self.applied = 0  # steps the last record went through

    def __bool__(self) -> bool:
        return bool(self.ops)

    def apply(self, record: Any, kind: str) -> tuple[str, str, str] | None:
        """None when every step keeps the record, else (stage, reason, detail) of the step that rejects it."""
        for applied, (stage, op) in enumerate(self.ops, 1):
            verdict = op.apply(record, kind)
            if verdict is not True and verdict is not False:
                self.applied = applied
                return stage, verdict[0], verdict[1]
        self.applied = len(self.ops)
        return None

    def undo(self) -> None:
        """Take the last record back out of every step's counts."""
        for _, op in self.ops[: self.applied]:
            op.undo()
        self.applied = 0

    def stats(self) -> list[dict[str, Any]]:
        return [op.stats() for _, op in self.ops]


def merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two stats dicts key by key (nested dicts recursively): the counts of two workers as one."""
    merged = dict(a)
    for key, value in b.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict):
            merged[key] = merge_stats(merged[key], value)
        else:
            merged[key] = merged[key] + value
    return merged


def merge_step_stats(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step stats of two parts of the input (files, byte ranges) as one, step by step."""
    return [merge_stats(x, y) for x, y in zip(a, b, strict=True)]


def run_rows(frame: pl.DataFrame, stage: str, op: RowOp) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """A row op over a frame: (kept, rejected, stats). Changed records are re-serialised and get a new ID;
    the others keep their text byte for byte. Works CHUNK_ROWS at a time, so only one chunk of records
    exists as Python objects."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    keep = [True] * frame.height
    changed_rows: list[int] = []
    changed_texts: list[str] = []
    rejected_rows: list[int] = []
    reasons: list[str] = []
    details: list[str] = []
    kinds = frame.get_column(F.KIND)
    for start in range(0, frame.height, CHUNK_ROWS):
        texts = frame.get_column(F.RECORD).slice(start, CHUNK_ROWS).to_list()
        for offset, (text, kind) in enumerate(zip(texts, kinds.slice(start, CHUNK_ROWS).to_list(), strict=True)):
            row = start + offset
            try:
                record = loads(text) if text is not None else None
                verdict: Verdict | None = op.apply(record, kind or "chat") if text is not None else op.unparsable(None)
            except decode_error:
                verdict = op.unparsable(text)
            if verdict is True:
                changed_rows.append(row)
                changed_texts.append(F.canonical_json(record))
            elif verdict is not False and verdict is not None:
                keep[row] = False
                rejected_rows.append(row)
                reasons.append(verdict[0])
                details.append(verdict[1])
    if changed_rows:
        index = pl.Series(changed_rows, dtype=pl.Int64())
        frame = frame.with_columns(
            frame.get_column(F.RECORD).scatter(index, pl.Series(changed_texts, dtype=pl.String())),
            frame.get_column(F.ID).scatter(index, pl.Series([F.row_id(t) for t in changed_texts], dtype=pl.String())),
        )
    if not rejected_rows:
        return frame, F.empty_rejects(), op.stats()
    mask = pl.Series("keep", keep, dtype=pl.Boolean())
    rejected = F.reject(frame.filter(~mask), stage, reasons, details)
    return frame.filter(mask), rejected, op.stats()
