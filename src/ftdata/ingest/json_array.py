"""JSON reader: a .json input holds one array of objects; LINE is the 1-based index in the array."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import orjson

from ftdata.ingest.detect import plan_for_objects
from ftdata.ingest.layouts import json_type
from ftdata.ingest.options import IngestError, IngestOptions
from ftdata.ingest.rows import FileRows, collect_objects
from ftdata.rowstage import RowStep

BOM = b"\xef\xbb\xbf"


def _is_json_lines(data: bytes) -> bool:
    first, _, rest = data.removeprefix(BOM).partition(b"\n")
    try:
        return bool(rest.strip()) and type(orjson.loads(first)) is dict
    except orjson.JSONDecodeError:
        return False


def read_json(path: Path, source: str, options: IngestOptions, row_steps: Sequence[RowStep] = ()) -> FileRows:
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        value = orjson.loads(data.removeprefix(BOM))
    except orjson.JSONDecodeError as exc:
        # One broken byte spoils a whole JSON document: no row can be told from the next.
        hint = " (one JSON value per line? name the file .jsonl)" if _is_json_lines(data) else ""
        raise IngestError(
            f"{source}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}){hint}; "
            "a .json input must hold one array of objects"
        ) from exc
    if type(value) is not list:
        raise IngestError(
            f"{source}: holds a JSON {json_type(value)}; a .json input must hold one array of objects "
            "(one object per line: name the file .jsonl)"
        )
    plan = plan_for_objects(value, source, options)
    return collect_objects(value, plan, source, sha256, row_steps=row_steps)
