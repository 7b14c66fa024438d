"""The canonical frame: one polars row per training example.

Every stage receives and returns frames of this shape. The training example itself is kept as one
canonical JSON string (`RECORD`) — exactly the object a trainer will read from `train.jsonl` — rather
than as nested polars structs: chat messages carry optional, heterogeneous keys (`tool_calls`, `weight`,
`name`, unknown keys that validation must see), and a string column keeps them lossless, hashes stably
and writes out as JSONL with no re-serialisation. Stages that need text parse it with orjson.

Reserved metadata columns are prefixed `_ftdata_`:

RECORD     canonical JSON of the example (chat: {"messages": [...], "tools"?: [...]};
           preference: {"input": {...}, "preferred_output": [...], "non_preferred_output": [...]})
ID         sha256 hex of RECORD (stable across polars versions; never `hash_rows`)
KIND       "chat" | "preference"
SOURCE     input file path as given
LINE       1-based line (JSONL/CSV, header = line 1 for CSV) or 1-based array index (JSON/Parquet row)
ORIGIN     "human" or "synthetic:<generator>:<model>"
LABEL      optional category used for balancing / stratifying
GROUP      optional group key (`--group-col`): rows of one group never straddle splits
CLUSTER    near-duplicate cluster id set by dedup stages (null = singleton)
SPLIT      set by the terminal split stage
TOKENS     billed tokens per example for the target model (set by the tokens stage)
TRAINED_TOKENS  of those, the assistant tokens the loss is computed on (weight != 0)

Rejected frames carry the same columns plus STAGE, REASON (snake_case), DETAIL (human text),
DUPLICATE_OF (row id of the kept partner, for dedup), SIMILARITY and RAW (the original text of input
that could not be parsed into a RECORD; RECORD is null then).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import polars as pl

RECORD = "_ftdata_record"
ID = "_ftdata_id"
KIND = "_ftdata_kind"
SOURCE = "_ftdata_source"
LINE = "_ftdata_line"
ORIGIN = "_ftdata_origin"
LABEL = "_ftdata_label"
GROUP = "_ftdata_group"
CLUSTER = "_ftdata_cluster"
SPLIT = "_ftdata_split"
TOKENS = "_ftdata_tokens"
TRAINED_TOKENS = "_ftdata_trained_tokens"

STAGE = "_ftdata_stage"
REASON = "_ftdata_reason"
DETAIL = "_ftdata_detail"
DUPLICATE_OF = "_ftdata_duplicate_of"
SIMILARITY = "_ftdata_similarity"
RAW = "_ftdata_raw"

SCHEMA: dict[str, pl.DataType] = {
    RECORD: pl.String(),
    ID: pl.String(),
    KIND: pl.String(),
    SOURCE: pl.String(),
    LINE: pl.Int64(),
    ORIGIN: pl.String(),
    LABEL: pl.String(),
    GROUP: pl.String(),
    CLUSTER: pl.String(),
}

REJECT_SCHEMA: dict[str, pl.DataType] = {
    **SCHEMA,
    STAGE: pl.String(),
    REASON: pl.String(),
    DETAIL: pl.String(),
    DUPLICATE_OF: pl.String(),
    SIMILARITY: pl.Float64(),
    RAW: pl.String(),
}


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the one serialisation used for hashing and for RECORD."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def row_id(record_json: str) -> str:
    return hashlib.sha256(record_json.encode()).hexdigest()


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def make_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a canonical frame from dicts that hold at least RECORD, SOURCE, LINE.

    Missing metadata gets defaults: ID from RECORD, KIND "chat", ORIGIN "human".
    """
    data: dict[str, list[Any]] = {name: [] for name in SCHEMA}
    for row in rows:
        record = row[RECORD]
        data[RECORD].append(record)
        data[ID].append(row.get(ID) or row_id(record))
        data[KIND].append(row.get(KIND, "chat"))
        data[SOURCE].append(row.get(SOURCE))
        data[LINE].append(row.get(LINE))
        data[ORIGIN].append(row.get(ORIGIN, "human"))
        data[LABEL].append(row.get(LABEL))
        data[GROUP].append(row.get(GROUP))
        data[CLUSTER].append(row.get(CLUSTER))
    return pl.DataFrame(data, schema=SCHEMA)


def reject(
    frame: pl.DataFrame,
    stage: str | Sequence[str],
    reason: str | pl.Expr | Sequence[str],
    detail: str | pl.Expr | Sequence[str | None] | None = None,
    duplicate_of: Sequence[str | None] | pl.Expr | None = None,
    similarity: Sequence[float | None] | pl.Expr | None = None,
) -> pl.DataFrame:
    """Turn rows of a canonical frame into rejected rows of REJECT_SCHEMA.

    `reason`/`detail` may be one value for all rows, a per-row sequence, or a polars expression.
    Extra columns of `frame` (e.g. TOKENS) are dropped: rejects keep the canonical metadata only.
    """

    def col(value: Any, dtype: pl.DataType) -> pl.Expr | pl.Series:
        if value is None:
            return pl.lit(None, dtype=dtype)
        if isinstance(value, pl.Expr):
            return value.cast(dtype)
        if isinstance(value, str | float | int):
            return pl.lit(value, dtype=dtype)
        return pl.Series(values=list(value), dtype=dtype)

    base = frame.select([c for c in SCHEMA])
    return base.with_columns(
        col(stage, pl.String()).alias(STAGE),
        col(reason, pl.String()).alias(REASON),
        col(detail, pl.String()).alias(DETAIL),
        col(duplicate_of, pl.String()).alias(DUPLICATE_OF),
        col(similarity, pl.Float64()).alias(SIMILARITY),
        pl.lit(None, dtype=pl.String()).alias(RAW),
    ).select(list(REJECT_SCHEMA))


def reject_raw(
    rows: Iterable[Mapping[str, Any]], stage: str = "ingest"
) -> pl.DataFrame:
    """Rejected rows for input that never became a RECORD: dicts with SOURCE, LINE, REASON, DETAIL, RAW."""
    data: dict[str, list[Any]] = {name: [] for name in REJECT_SCHEMA}
    for row in rows:
        for name in REJECT_SCHEMA:
            data[name].append(row.get(name))
        data[STAGE][-1] = row.get(STAGE, stage)
        data[ORIGIN][-1] = row.get(ORIGIN, "human")
        data[KIND][-1] = row.get(KIND)
    return pl.DataFrame(data, schema=REJECT_SCHEMA)


def records(frame: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """Parse RECORD of every row (use in stages that need the structure, not the text)."""
    loads = orjson.loads
    for text in frame.get_column(RECORD):
        yield loads(text)
