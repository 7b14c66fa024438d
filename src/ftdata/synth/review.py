"""Human review: export a version's rows as a sheet, read the decisions back as the `review` stage.

`ftdata review support@3f2a... --origin synthetic -o sheet.csv` writes one row per example with an empty
`accept` column (CSV for spreadsheets, or JSONL). A reviewer marks rows `no` (or false/0/n) to drop them;
empty or yes/true/1/y keeps them. `ftdata curate --review-file sheet.csv` then makes a new version from
the reviewed one (the sheet names it in its `dataset`/`version` columns) whose `review` stage rejects the
marked rows with `rejected_in_review`.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import orjson
import polars as pl
from pydantic import Field

from ftdata import frame as F
from ftdata.recipe import RecipeError
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.store import Version, sha256_file
from ftdata.synth.prompts import text_of

COLUMNS = ("dataset", "version", "row_id", "split", "origin", "seed_ids", "label", "user", "assistant", "accept")
REQUIRED = ("dataset", "version", "row_id", "accept")
REJECT_VALUES = frozenset({"no", "n", "false", "0"})
KEEP_VALUES = frozenset({"", "yes", "y", "true", "1"})
ORIGINS = ("synthetic", "human", "all")


class ReviewSheetError(RecipeError):
    """A review sheet that cannot be applied; the message names the file and line."""


# --- export -----------------------------------------------------------------------------------------------

def turns_text(record: Any) -> tuple[str, str]:
    """(user turns, assistant turns) of a chat or preference record, each joined by blank lines."""
    if not isinstance(record, dict):
        return "", ""
    if "messages" in record:
        messages, answers = record.get("messages") or [], []
    else:
        messages = (record.get("input") or {}).get("messages") or []
        answers = record.get("preferred_output") or []
    user = [text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    assistant = [
        text_of(m.get("content")) for m in [*messages, *answers] if isinstance(m, dict) and m.get("role") == "assistant"
    ]
    return "\n\n".join(t for t in user if t), "\n\n".join(t for t in assistant if t)


def origin_matches(origin: str | None, wanted: str) -> bool:
    if wanted == "all":
        return True
    is_synthetic = (origin or "").startswith("synthetic")
    return is_synthetic if wanted == "synthetic" else not is_synthetic


def sheet_rows(version: Version, origin: str = "synthetic") -> Iterator[dict[str, Any]]:
    """One sheet row per example of the version whose origin matches, in split-file order."""
    index: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in version.iter_rows_index():
        index[(entry.get("split"), entry.get("id"))].append(entry)
    for split in version.splits:
        with version.split_path(split).open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                record = orjson.loads(line)
                row_id = F.row_id(F.canonical_json(record))
                entries = index.get((split, row_id))
                entry = entries.pop(0) if entries else {}
                if not origin_matches(entry.get("origin"), origin):
                    continue
                meta = entry.get("synth_meta") or {}
                user, assistant = turns_text(record)
                yield {
                    "dataset": version.dataset,
                    "version": version.version,
                    "row_id": row_id,
                    "split": split,
                    "origin": entry.get("origin") or "",
                    "seed_ids": list(meta.get("seed_ids") or []),
                    "label": entry.get("label") or "",
                    "user": user,
                    "assistant": assistant,
                    "accept": "",
                }


def write_sheet(rows: Iterator[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "seed_ids": " ".join(row["seed_ids"])})
        count += 1
    return count


# --- reading decisions --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    row_id: str
    keep: bool
    value: str
    line: int


@dataclass(frozen=True)
class Sheet:
    path: Path
    dataset: str
    version: str
    decisions: list[Decision]

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


def _sheet_format(path: Path, text: str) -> str:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _sheet_entries(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if _sheet_format(path, text) == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ReviewSheetError(f"{path}:{number}: not a JSON object ({exc})") from None
            if not isinstance(obj, dict):
                raise ReviewSheetError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ReviewSheetError(
            f"{path}:1: the header lacks {', '.join(missing)} (a sheet from `ftdata review` has {', '.join(COLUMNS)})"
        )
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise ReviewSheetError(f"{path}:{reader.line_num}: {exc}") from None


def read_sheet(path: Path) -> Sheet:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # spreadsheet programs add a BOM
    except OSError as exc:
        raise ReviewSheetError(f"{path}: cannot read review sheet: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ReviewSheetError(f"{path}: not UTF-8 ({exc})") from None
    source: tuple[str, str] | None = None
    decisions = []
    for line, row in _sheet_entries(path, text):
        absent = [c for c in REQUIRED if row.get(c) is None]
        if absent:
            raise ReviewSheetError(f"{path}:{line}: missing {', '.join(absent)}")
        ref = (str(row["dataset"]).strip(), str(row["version"]).strip())
        if not all(ref) or not str(row["row_id"]).strip():
            raise ReviewSheetError(f"{path}:{line}: dataset, version and row_id must not be empty")
        if source is None:
            source = ref
        elif ref != source:
            raise ReviewSheetError(f"{path}:{line}: row is from {ref[0]}@{ref[1]}, earlier rows from {source[0]}@{source[1]}")
        value = str(row["accept"]).strip()
        if value.lower() not in REJECT_VALUES | KEEP_VALUES:
            raise ReviewSheetError(
                f"{path}:{line}: accept must be empty, yes/y/true/1 or no/n/false/0, got {value!r}"
            )
        decisions.append(Decision(str(row["row_id"]).strip(), value.lower() not in REJECT_VALUES, value, line))
    if source is None:
        raise ReviewSheetError(f"{path}: the review sheet has no rows")
    return Sheet(path, source[0], source[1], decisions)


def review_parent(sheet: Path) -> str:
    """`dataset@version` of the version a sheet was exported from (ReviewSheetError when malformed)."""
    return read_sheet(sheet).ref


# --- the stage ----------------------------------------------------------------------------------------------

class ReviewConfig(StageConfig):
    sheet: str = Field(description="Review sheet from `ftdata review` (CSV or JSONL) with an accept column")
    sheet_sha256: str = Field(description="sha256 of the sheet: the version id changes when the decisions do")


def run(frame: pl.DataFrame, config: ReviewConfig, ctx: Context) -> StageResult:
    path = Path(config.sheet)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ReviewSheetError(f"{path}: cannot read review sheet: {exc}") from None
    if digest != config.sheet_sha256:
        raise ReviewSheetError(
            f"{path} changed since this recipe was made (sha256 {digest[:12]}…, expected {config.sheet_sha256[:12]}…)"
        )
    sheet = read_sheet(path)
    rejected_ids = {d.row_id: d for d in sheet.decisions if not d.keep}
    present = set(frame.get_column(F.ID).to_list())
    drop = pl.col(F.ID).is_in(list(rejected_ids))
    dropped = frame.filter(drop)
    details = [f"marked {rejected_ids[i].value!r} in {path.name}:{rejected_ids[i].line}" for i in dropped.get_column(F.ID)]
    stats = {
        "sheet_rows": len(sheet.decisions),
        "marked_reject": len(rejected_ids),
        "marked_keep": sum(1 for d in sheet.decisions if d.keep and d.value),
        "undecided": sum(1 for d in sheet.decisions if not d.value),
        "not_in_version": sum(1 for d in sheet.decisions if d.row_id not in present),
    }
    return StageResult(
        kept=frame.filter(~drop),
        rejected=F.reject(dropped, STAGE.name, "rejected_in_review", details),
        stats=stats,
        sections={"review": {"sheet": path.name, "sheet_sha256": digest, "reviewed": sheet.ref}},
    )


STAGE = Stage(
    name="review",
    version="1",
    kind="filter",
    config_cls=ReviewConfig,
    run=run,
    order=90,
    description="Drop the rows a reviewer marked accept=no in a sheet from `ftdata review`",
)


# --- the command --------------------------------------------------------------------------------------------

@click.command("review")
@click.argument("ref")
@click.option("--origin", type=click.Choice(ORIGINS), default="synthetic", show_default=True,
              help="Which rows go on the sheet.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="Sheet format (default: from the -o suffix, else csv).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the sheet here (default: stdout).")
@click.pass_context
def review_command(ctx: click.Context, ref: str, origin: str, fmt: str | None, output: Path | None) -> None:
    """Export rows of REF (DATASET@VERSION) as a review sheet with an empty `accept` column.

    Mark rows no/false/0/n to drop them, then `ftdata curate --review-file SHEET` writes the reviewed version.
    """
    from ftdata.cli import store_of

    version = store_of(ctx).resolve(ref)
    fmt = fmt or ("jsonl" if output is not None and output.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    rows = sheet_rows(version, origin)
    if output is None:
        count = write_sheet(rows, fmt, sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as fh:
            count = write_sheet(rows, fmt, fh)
    kind = "" if origin == "all" else f"{origin} "
    click.echo(f"{count} {kind}rows of {version.ref} to review → {output or 'stdout'}", err=True)
