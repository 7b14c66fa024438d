"""Ingest: read input files of any known format and layout into the canonical frame.

    result = ingest(["data.csv", "chat.jsonl"], IngestOptions(label_col="category"))
    result.frame     # ftdata.frame.SCHEMA, one row per example (RECORD = canonical JSON, ID = its sha256)
    result.rejected  # ftdata.frame.REJECT_SCHEMA, stage "ingest": lines/rows that never became a record
    result.inputs    # per file: path, sha256, bytes, rows, format, layout

Formats by extension: .csv, .jsonl/.ndjson, .json (one array of objects), .parquet. Layouts are
detected per file (`ftdata.ingest.detect`) and mapped per row (`ftdata.ingest.layouts`). Problems with
one row become rejected rows (file + line + snake_case reason) and the rest of the file goes through;
problems with a whole file raise IngestError.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ftdata import frame as F
from ftdata.ingest.csv_file import read_csv
from ftdata.ingest.json_array import read_json
from ftdata.ingest.jsonl import read_jsonl
from ftdata.ingest.options import IngestError, IngestOptions, ingest_cli_options, ingest_options_from_cli
from ftdata.ingest.parquet import read_parquet
from ftdata.ingest.rows import FileRows
from ftdata.rowstage import RowStep, merge_step_stats

__all__ = [
    "IngestError",
    "IngestOptions",
    "IngestResult",
    "ingest",
    "ingest_cli_options",
    "ingest_options_from_cli",
]

FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


@dataclass
class IngestResult:
    frame: pl.DataFrame = field(default_factory=F.empty_frame)
    rejected: pl.DataFrame = field(default_factory=F.empty_rejects)
    # Per input file: {"path", "sha256", "bytes", "rows", "format", "layout"}; rows counts records read,
    # rejected ones included (JSONL: physical lines; CSV: records after the header; JSON/Parquet: elements).
    inputs: list[dict[str, Any]] = field(default_factory=list)
    # With row steps (`ftdata.rowstage`): records they rejected (STAGE = the step's stage), each step's stats.
    stage_rejected: pl.DataFrame = field(default_factory=F.empty_rejects)
    stage_stats: list[dict[str, Any]] = field(default_factory=list)


def _format(path: Path, source: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS)
        raise IngestError(f"{source}: unknown file type {path.suffix or '(no extension)'!r}; ftdata reads {known}")
    return fmt


def _read(
    path: Path,
    source: str,
    fmt: str,
    options: IngestOptions,
    workers: int,
    row_steps: Sequence[RowStep],
    pool: Executor | None,
) -> FileRows:
    if fmt == "jsonl":
        return read_jsonl(path, source, options, workers, row_steps=row_steps, pool=pool)
    readers = {"csv": read_csv, "json": read_json, "parquet": read_parquet}
    return readers[fmt](path, source, options, row_steps)


def ingest(
    paths: Sequence[str | Path],
    options: IngestOptions = IngestOptions(),
    workers: int = 1,
    row_steps: Sequence[RowStep] = (),
    pool: Executor | None = None,
) -> IngestResult:
    """Read every file into one canonical frame (in the order given) plus the rows that could not be read.

    `row_steps` (row stages such as normalize and validate) run on each record as it is read; the rows
    they reject are in `stage_rejected`, not in `frame`. `pool`: worker processes to read big files with
    (`ftdata.workers`; None: a fresh pool when one pays off)."""
    if not paths:
        raise IngestError("no input files given")
    kept: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    stage_rejected: list[pl.DataFrame] = []
    stage_stats: list[dict[str, Any]] = [{} for _ in row_steps]
    inputs: list[dict[str, Any]] = []
    for given in paths:
        source = str(given)
        path = Path(given)
        fmt = _format(path, source)
        if not path.exists():
            raise IngestError(f"{source}: no such file")
        if not path.is_file():
            raise IngestError(f"{source}: not a file")
        try:
            size = path.stat().st_size
            rows = _read(path, source, fmt, options, workers, row_steps, pool)
        except OSError as exc:
            raise IngestError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        kept.append(rows.frame)
        rejected.append(rows.rejected)
        stage_rejected.append(rows.stage_rejected)
        stage_stats = merge_step_stats(stage_stats, rows.stage_stats)
        inputs.append(
            {
                "path": source,
                "sha256": rows.sha256,
                "bytes": size,
                "rows": rows.rows,
                "format": fmt,
                "layout": rows.layout,
            }
        )
    return IngestResult(pl.concat(kept), pl.concat(rejected), inputs, pl.concat(stage_rejected), stage_stats)
