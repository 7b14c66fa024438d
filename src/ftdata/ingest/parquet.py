"""Parquet reader (polars); LINE is the 1-based row index.

Parquet has no "absent key": struct columns give every row every field, null where the row had none
(each chat message would carry `tool_calls: null`, `weight: null`, ...). Null fields are dropped again
so that validation sees the messages as written — except `content`, whose null means something (an
assistant message that only calls tools).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ftdata.ingest.detect import plan_for_columns
from ftdata.ingest.options import IngestError, IngestOptions
from ftdata.ingest.rows import FileRows, collect_objects
from ftdata.rowstage import RowStep
from ftdata.store import sha256_file

_KEPT_NULL_KEYS = frozenset({"content"})


def _without_nulls(value: Any) -> Any:
    if type(value) is dict:
        return {k: _without_nulls(v) for k, v in value.items() if v is not None or k in _KEPT_NULL_KEYS}
    if type(value) is list:
        return [_without_nulls(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """JSON for Parquet values orjson does not write itself (binary, decimal, duration, ...): text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def read_parquet(path: Path, source: str, options: IngestOptions, row_steps: Sequence[RowStep] = ()) -> FileRows:
    try:
        table = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(f"{source}: cannot read as Parquet: {exc}") from exc
    plan = plan_for_columns(table.columns, source, options)
    rows: Iterator[dict[str, Any]] = (_without_nulls(row) for row in table.iter_rows(named=True))
    return collect_objects(rows, plan, source, sha256_file(path), _json_default, row_steps)
