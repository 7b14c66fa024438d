"""CSV reader: header row, one record per CSV record (which may span lines), every record accounted for.

LINE is the physical line where a record starts (the header is line 1). A CSV record is what Python's
csv module yields; quoted fields may hold newlines. Bytes that are not UTF-8 are carried through the
parser as surrogate escapes and the records holding them are rejected as `invalid_utf8`, so one bad row
does not cost the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ftdata.ingest.detect import plan_for_columns
from ftdata.ingest.options import IngestError, IngestOptions
from ftdata.ingest.rows import FileRows, RowCollector
from ftdata.rowstage import RowStep

BOM = "\ufeff"

# A pasted log or document can make one field far longer than csv's default limit (128 KiB).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _has_bad_bytes(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)


def _raw(lines: list[str], first: int, last: int) -> str:
    """The record's original text (lines first..last, 1-based), bad bytes shown as \\xNN."""
    text = "".join(lines[first - 1 : last]).removesuffix("\n").removesuffix("\r")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _records(lines: list[str]) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """(first line, last line, fields or the csv module's error) per CSV record."""
    reader = csv.reader(lines)
    last = 0
    while True:
        try:
            fields: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the csv module gave up on this record: report it and go on
            fields = exc
        first, last = last + 1, reader.line_num
        yield first, last, fields


def read_csv(path: Path, source: str, options: IngestOptions, row_steps: Sequence[RowStep] = ()) -> FileRows:
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
        maybe_bad = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        maybe_bad = True
    lines = io.StringIO(text.removeprefix(BOM), newline="").readlines()
    records = _records(lines)
    blank_lines: list[int] = []
    plan = None
    header: list[str] = []
    for first, _, fields in records:
        if fields == []:
            blank_lines.append(first)
            continue
        if isinstance(fields, csv.Error):
            raise IngestError(f"{source}:{first}: cannot parse the CSV header: {fields}")
        header = fields
        if maybe_bad and any(_has_bad_bytes(name) for name in header):
            raise IngestError(f"{source}:{first}: the CSV header is not valid UTF-8")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise IngestError(f"{source}:{first}: the CSV header repeats {', '.join(map(repr, duplicates))}")
        plan = plan_for_columns(header, source, options)
        break
    rows = RowCollector(plan, source, row_steps=row_steps)
    for line in blank_lines:
        rows.reject(line, "blank_line", "the line is empty", "")
    count = len(blank_lines)
    for first, last, fields in records:  # the records after the header
        count += 1
        if isinstance(fields, csv.Error):
            problem: tuple[str, str] | None = ("invalid_csv", str(fields))
        else:
            problem = _problem(fields, header, maybe_bad) or rows.add(dict(zip(header, fields)), first)
        if problem is not None:
            rows.reject(first, *problem, _raw(lines, first, last))
    return rows.finish(count, plan.layout if plan else None, sha256)


def _problem(fields: list[str], header: list[str], maybe_bad: bool) -> tuple[str, str] | None:
    if fields == []:
        return "blank_line", "the line is empty"
    if len(fields) != len(header):
        return "ragged_row", f"{len(fields)} fields where the header has {len(header)}"
    if maybe_bad and any(_has_bad_bytes(field) for field in fields):
        return "invalid_utf8", "the row holds bytes that are not UTF-8"
    return None
