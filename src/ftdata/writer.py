"""Write a version directory and its manifest, atomically; read a version back as a frame."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

import ftdata
from ftdata import frame as F
from ftdata.store import MANIFEST, REJECTED, ROWS, SCHEMA_VERSION, Store, Version, dump_json, file_entry

if TYPE_CHECKING:
    from ftdata.pipeline import StageReport

SPLIT_ORDER = ("train", "validation", "test")
ALWAYS_WRITTEN = ("train", "validation")
PREFIX = "_ftdata_"
REJECTED_SLICE_ROWS = 10_000


def label_distribution(frame: pl.DataFrame) -> dict[str, int]:
    if frame.is_empty():
        return {}
    counts = frame.group_by(pl.col(F.LABEL).fill_null("(none)")).len()
    return {str(label): int(n) for label, n in sorted(counts.iter_rows())}


def split_names(final: pl.DataFrame) -> list[str]:
    present = set(final.get_column(F.SPLIT).drop_nulls().unique().to_list()) if final.height else set()
    extra = sorted(present - set(SPLIT_ORDER))
    return [s for s in SPLIT_ORDER if s in present or s in ALWAYS_WRITTEN] + extra


def write_rejected(path: Path, rejected: pl.DataFrame) -> None:
    """One JSON object per rejected row: where it came from, why it went, and its content. Written
    REJECTED_SLICE_ROWS at a time: at 1M input rows the rejects alone are ~150 MB of text."""
    dumps, fragment = orjson.dumps, orjson.Fragment
    with path.open("wb") as fh:
        for start in range(0, rejected.height, REJECTED_SLICE_ROWS):
            out = bytearray()
            for row in rejected.slice(start, REJECTED_SLICE_ROWS).iter_rows(named=True):
                record = row[F.RECORD]
                entry = {
                    "stage": row[F.STAGE],
                    "reason": row[F.REASON],
                    "detail": row[F.DETAIL],
                    "source": row[F.SOURCE],
                    "line": row[F.LINE],
                    "row_id": row[F.ID],
                    "origin": row[F.ORIGIN],
                    "label": row[F.LABEL],
                    "duplicate_of": row[F.DUPLICATE_OF],
                    "similarity": row[F.SIMILARITY],
                    # Parsed content when there was a record, else the original text that could not be parsed.
                    "record": fragment(record) if record is not None else None,
                    "raw": row[F.RAW],
                }
                out += dumps(entry)
                out += b"\n"
            fh.write(out)


def index_frame(final: pl.DataFrame) -> pl.DataFrame:
    """rows.jsonl: every `_ftdata_*` column except the record itself, prefix stripped."""
    columns = [c for c in final.columns if c.startswith(PREFIX) and c != F.RECORD]
    return final.select(columns).rename({c: c.removeprefix(PREFIX) for c in columns})


def write_records(path: Path, records: pl.Series) -> None:
    """RECORD texts as JSON lines. polars writes them (in Rust, on its threads) as a one-column CSV that is
    never quoted: canonical JSON escapes every control character, so each record is one line as it is."""
    if records.is_empty():
        path.write_bytes(b"")
        return
    records.to_frame().write_csv(path, include_header=False, quote_style="never", line_terminator="\n")


def cost_section(target_model: str, train_tokens: int | None, n_train: int) -> dict[str, Any] | None:
    if train_tokens is None or n_train == 0:
        return None
    from ftdata import pricing

    try:
        return pricing.estimate_cost(target_model, train_tokens, n_train)
    except pricing.UnknownModel:
        return None


def write_version(
    store: Store,
    dataset: str,
    vid: str,
    final: pl.DataFrame,
    rejected: pl.DataFrame,
    reports: Sequence[StageReport],
    sections: dict[str, Any],
    header: dict[str, Any],
    labels_ingested: dict[str, int],
    carry: dict[str, Any] | None = None,
) -> tuple[Version, dict[str, Any]]:
    if F.SPLIT not in final.columns:
        raise ValueError("the recipe has no split stage: rows have no split to be written to")
    names = split_names(final)
    tmp = store.tmp_dir(dataset, vid)
    # Split files are hashed on a thread (hashlib and file reads release the GIL) while the rest is written.
    hashing = ThreadPoolExecutor(max_workers=1)
    try:
        splits: dict[str, dict[str, Any]] = {}
        files_of: dict[str, Future[dict[str, Any]]] = {}
        index_parts: list[pl.DataFrame] = []
        has_tokens = F.TOKENS in final.columns
        written = 0
        for name in names:
            part = final.filter(pl.col(F.SPLIT) == name)
            path = tmp / f"{name}.jsonl"
            write_records(path, part.get_column(F.RECORD))
            files_of[name] = hashing.submit(file_entry, path, part.height)
            entry: dict[str, Any] = {}
            entry["synthetic"] = int(part.get_column(F.ORIGIN).str.starts_with("synthetic").sum())
            entry["labels"] = label_distribution(part) if part.get_column(F.LABEL).null_count() < part.height else {}
            if has_tokens:
                entry["tokens"] = int(part.get_column(F.TOKENS).sum() or 0)
                if F.TRAINED_TOKENS in part.columns:
                    entry["trained_tokens"] = int(part.get_column(F.TRAINED_TOKENS).sum() or 0)
            splits[name] = entry
            index_parts.append(index_frame(part))
            written += part.height
        if written != final.height:
            raise ValueError(f"{final.height - written} rows have no split; refusing to write a version that does not add up")

        write_rejected(tmp / REJECTED, rejected)
        pl.concat(index_parts).write_ndjson(tmp / ROWS)  # in split-file order
        files = {
            "rejected": file_entry(tmp / REJECTED, rejected.height),
            "rows": file_entry(tmp / ROWS, final.height),
        }
        for name, file in files_of.items():
            splits[name].update(file.result())  # path, sha256, bytes, rows

        by_reason: dict[str, int] = {}
        for report in reports:
            for reason, n in report.rejected_by_reason.items():
                key = f"{report.name}.{reason}"
                by_reason[key] = by_reason.get(key, 0) + n
        generated = sum(r.generated for r in reports)
        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "dataset": dataset,
            "version": vid,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "ftdata_version": ftdata.__version__,
            **header,
            "stages": [r.manifest_entry() for r in reports],
            "splits": splits,
            "files": files,
            "totals": {
                "input_rows": sum(i.get("rows", 0) for i in header["inputs"]),
                "generated": generated,
                "kept": final.height,
                "rejected": rejected.height,
                "rejected_by_reason": dict(sorted(by_reason.items())),
            },
            "labels": {"ingested": labels_ingested, "final": label_distribution(final)},
            **(carry or {}),
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(manifest.get(key), dict):
                manifest[key] = {**manifest[key], **value}
            else:
                manifest[key] = value
        if has_tokens and "train" in splits:
            cost = cost_section(header["target_model"], splits["train"].get("tokens"), splits["train"]["rows"])
            if cost is not None:
                manifest["cost"] = cost
        (tmp / MANIFEST).write_bytes(dump_json(manifest))
    except BaseException:
        hashing.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    hashing.shutdown()
    return store.commit(tmp, dataset, vid), manifest


def load_version_frame(version: Version) -> pl.DataFrame:
    """A version's kept rows as a canonical frame (with SPLIT and every index column), in file order."""
    records: list[str] = []
    order = {name: i for i, name in enumerate(SPLIT_ORDER)}
    for name in sorted(version.splits, key=lambda n: (order.get(n, len(order)), n)):
        with version.split_path(name).open("rb") as fh:
            records.extend(line.rstrip(b"\n").decode() for line in fh if line.strip())
    # Every row decides the schema: columns such as synth_meta or cluster are null for the first
    # hundreds of rows and set later, which polars' default 100-row inference would reject.
    index = pl.read_ndjson(version.path / ROWS, infer_schema_length=None) if records else pl.DataFrame()
    index = index.rename({c: PREFIX + c for c in index.columns})
    frame = index.with_columns(pl.Series(F.RECORD, records, dtype=pl.String()))
    for name, dtype in F.SCHEMA.items():
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(name))
        else:
            frame = frame.with_columns(pl.col(name).cast(dtype))
    return frame
