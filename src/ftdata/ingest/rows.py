"""Collect one file's (or byte range's) rows as plain lists, turned into polars frames in batches.

Readers call `add(obj, line)` per parsed object — it maps, serialises and hashes the record — and
`reject(line, reason, detail, raw)` for input that never became an object. Building frames from lists is
far faster than growing them row by row; doing it every BATCH_BYTES of records keeps the Python strings
from living next to their polars copy for a whole 2 GB file (peak memory stays near one copy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from ftdata import frame as F
from ftdata.ingest.layouts import LayoutPlan, RowRejected, json_type, mapper
from ftdata.rowstage import RowRunner, RowStep


@dataclass
class FileRows:
    """What one reader produced for one file: kept and rejected rows, and the records it read."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    rows: int
    layout: str | None
    sha256: str
    # Rows that became records but a fused row stage rejected (STAGE says which), and each row step's stats.
    stage_rejected: pl.DataFrame = field(default_factory=F.empty_rejects)
    stage_stats: list[dict[str, Any]] = field(default_factory=list)


BATCH_BYTES = 64 << 20


class RowCollector:
    def __init__(
        self,
        plan: LayoutPlan | None,
        source: str,
        dumps_default: Callable[[Any], Any] | None = None,
        row_steps: Sequence[RowStep] = (),
    ) -> None:
        # A file without a single JSON object has no layout; nothing reaches the mapper then.
        self.plan = plan or LayoutPlan("messages")
        self.source = source
        self.map = mapper(self.plan)
        self.dumps_default = dumps_default
        self.batches: list[pl.DataFrame] = []
        self.batch_bytes = 0
        self.records: list[str] = []
        self.ids: list[str] = []
        self.lines: list[int] = []
        self.labels: list[str | None] = []
        self.groups: list[str | None] = []
        self.rejects: list[tuple[int, str, str, str | None]] = []
        # Row stages fused into reading (`ftdata.rowstage`): applied to each mapped record before it is
        # serialised; what they reject is kept aside with its stage, reason and detail.
        self.row_runner = RowRunner(row_steps)
        self.stage_rejects: list[tuple[str, str, int, str | None, str | None, str, str, str]] = []

    def add(self, obj: Any, line: int) -> tuple[str, str] | None:
        """Keep `obj` as a record; return (reason, detail) instead when it cannot be one."""
        if type(obj) is not dict:
            return "not_an_object", f"holds a JSON {json_type(obj)}, not an object"
        try:
            record, label, group = self.map(obj)
            verdict = None
            if self.row_runner:
                if self.dumps_default is not None:
                    # Row ops must see what the frame path parses back from RECORD: JSON values only
                    # (Parquet's bytes, dates and decimals become text, NaN null).
                    record = orjson.loads(orjson.dumps(record, default=self.dumps_default))
                verdict = self.row_runner.apply(record, self.plan.kind)
            try:
                data = orjson.dumps(record, default=self.dumps_default, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:
                self.row_runner.undo()  # the row never becomes a record: the frame path would not count it
                raise
        except RowRejected as exc:
            return exc.reason, exc.detail
        except orjson.JSONEncodeError as exc:
            # orjson reads 1024 levels of nesting but writes only 254.
            return "too_deeply_nested", f"cannot be serialised: {exc}"
        text, row_id = data.decode(), hashlib.sha256(data).hexdigest()
        if verdict is not None:
            self.stage_rejects.append((text, row_id, line, label, group, *verdict))
            return None
        self.records.append(text)
        self.ids.append(row_id)
        self.lines.append(line)
        self.labels.append(label)
        self.groups.append(group)
        self.batch_bytes += len(data)
        if self.batch_bytes >= BATCH_BYTES:
            self._flush()
        return None

    def reject(self, line: int, reason: str, detail: str, raw: str | None) -> None:
        self.rejects.append((line, reason, detail, raw))

    def finish(self, rows: int, layout: str | None, sha256: str) -> FileRows:
        kept, rejected, stage_rejected = self.frames()
        return FileRows(kept, rejected, rows, layout, sha256, stage_rejected, self.row_runner.stats())

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Kept rows, rows ingest rejected, rows a row stage rejected."""
        return self.kept_frame(), self.rejected_frame(), self.stage_rejected_frame()

    def stage_rejected_frame(self) -> pl.DataFrame:
        if not self.stage_rejects:
            return F.empty_rejects()
        texts, ids, lines, labels, groups, stages, reasons, details = zip(*self.stage_rejects, strict=True)
        n = len(texts)
        rows = pl.DataFrame(
            {
                F.RECORD: texts, F.ID: ids, F.KIND: [self.plan.kind] * n, F.SOURCE: [self.source] * n,
                F.LINE: lines, F.ORIGIN: ["human"] * n, F.LABEL: labels, F.GROUP: groups, F.CLUSTER: [None] * n,
            },
            schema=F.SCHEMA,
        )
        return F.reject(rows, list(stages), list(reasons), list(details))

    def _flush(self) -> None:
        n = len(self.records)
        self.batches.append(
            pl.DataFrame(
                {
                    F.RECORD: pl.Series(self.records, dtype=pl.String()),
                    F.ID: pl.Series(self.ids, dtype=pl.String()),
                    F.KIND: pl.repeat(self.plan.kind, n, dtype=pl.String(), eager=True),
                    F.SOURCE: pl.repeat(self.source, n, dtype=pl.String(), eager=True),
                    F.LINE: pl.Series(self.lines, dtype=pl.Int64()),
                    F.ORIGIN: pl.repeat("human", n, dtype=pl.String(), eager=True),
                    F.LABEL: pl.Series(self.labels, dtype=pl.String()),
                    F.GROUP: pl.Series(self.groups, dtype=pl.String()),
                    F.CLUSTER: pl.Series([None] * n, dtype=pl.String()),
                },
                schema=F.SCHEMA,
            )
        )
        self.records, self.ids, self.lines, self.labels, self.groups = [], [], [], [], []
        self.batch_bytes = 0

    def kept_frame(self) -> pl.DataFrame:
        if self.records or not self.batches:
            self._flush()
        return pl.concat(self.batches) if len(self.batches) > 1 else self.batches[0]

    def rejected_frame(self) -> pl.DataFrame:
        return F.reject_raw(
            {F.SOURCE: self.source, F.LINE: line, F.REASON: reason, F.DETAIL: detail, F.RAW: raw}
            for line, reason, detail, raw in self.rejects
        )


def shift_lines(frame: pl.DataFrame, offset: int) -> pl.DataFrame:
    """Make range-local line numbers file-global (parallel JSONL reading)."""
    return frame.with_columns(pl.col(F.LINE) + offset) if offset else frame


def _raw_json(obj: Any, dumps_default: Callable[[Any], Any] | None) -> str | None:
    try:
        return orjson.dumps(obj, default=dumps_default, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: DETAIL says so, RAW stays empty
        return None


def collect_objects(
    objects: Iterable[Any],
    plan: LayoutPlan | None,
    source: str,
    sha256: str,
    dumps_default: Callable[[Any], Any] | None = None,
    row_steps: Sequence[RowStep] = (),
) -> FileRows:
    """Rows of a file read as a sequence of values (JSON array, Parquet): LINE is the 1-based index."""
    rows = RowCollector(plan, source, dumps_default, row_steps)
    count = 0
    for count, obj in enumerate(objects, 1):
        problem = rows.add(obj, count)
        if problem is not None:
            rows.reject(count, *problem, _raw_json(obj, dumps_default))
    return rows.finish(count, plan.layout if plan else None, sha256)
