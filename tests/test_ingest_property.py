"""Property: whatever bytes or JSON a file holds, ingest does not crash and accounts for every record.

"Records" a file holds, precisely:
- JSONL: physical lines — the pieces between b"\\n" after a leading BOM is dropped, a last piece without a
  newline included, nothing after a final newline. Each line number 1..n is kept or rejected exactly once.
- CSV: the records Python's csv module reads from the (BOM-less) text, minus the header.
- JSON: the elements of the top-level array.
The only exception allowed is IngestError for a file whose layout cannot be detected.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ftdata import frame as F
from ftdata.ingest import IngestError, IngestOptions, IngestResult, ingest

KEYS = ["messages", "role", "content", "prompt", "completion", "conversations", "from", "value", "instruction",
        "input", "output", "question", "answer", "preferred_output", "tool_calls", "weight", "human", "gpt"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    | st.sampled_from(["human", "gpt", "user", "assistant", "system"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=5),
    max_leaves=15,
)
# Bytes that look like lines of a dataset more often than uniform noise does.
line_bytes = st.lists(
    st.binary(max_size=12)
    | st.sampled_from([b"", b"\r", b" ", b"{", b"}", b'"', b",", b"\xef\xbb\xbf", b"\xff", b"\xc3", b'{"messages": []}', b"[1]"]),
    max_size=30,
).map(lambda parts: b"\n".join(parts) if parts and parts[0] == b"" else b"".join(parts))
fast = settings(max_examples=60, deadline=None)


def ingest_bytes(name: str, data: bytes, options: IngestOptions) -> IngestResult | None:
    """Ingest `data` written as file `name`; None when the file's layout cannot be detected."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return ingest([path], options)
        except IngestError as error:
            assert f"{name}: cannot detect the layout" in str(error)
            return None


def jsonl_line_count(data: bytes) -> int:
    data = data.removeprefix(b"\xef\xbb\xbf")
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def assert_every_line_once(result: IngestResult, count: int) -> None:
    lines = result.frame.get_column(F.LINE).to_list() + result.rejected.get_column(F.LINE).to_list()
    assert sorted(lines) == list(range(1, count + 1))
    assert result.inputs[0]["rows"] == count
    assert set(result.rejected.get_column(F.STAGE)) <= {"ingest"}


@fast
@given(data=line_bytes)
def test_arbitrary_bytes_as_jsonl_every_line_kept_or_rejected(data: bytes) -> None:
    result = ingest_bytes("noise.jsonl", data, IngestOptions(layout="messages"))
    assert result is not None
    assert_every_line_once(result, jsonl_line_count(data))


@fast
@given(data=line_bytes)
def test_arbitrary_bytes_as_jsonl_with_detection(data: bytes) -> None:
    result = ingest_bytes("noise.jsonl", data, IngestOptions())
    if result is not None:
        assert_every_line_once(result, jsonl_line_count(data))


@fast
@given(data=line_bytes, bom=st.booleans())
def test_arbitrary_bytes_as_csv_every_record_kept_or_rejected(data: bytes, bom: bool) -> None:
    content = (b"\xef\xbb\xbf" if bom else b"") + b"question,answer\n" + data
    result = ingest_bytes("noise.csv", content, IngestOptions())
    assert result is not None
    text = content.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    records = len(list(csv.reader(io.StringIO(text, newline="")))) - 1
    assert result.frame.height + result.rejected.height == records == result.inputs[0]["rows"]
    lines = result.frame.get_column(F.LINE).to_list() + result.rejected.get_column(F.LINE).to_list()
    assert len(set(lines)) == len(lines) and all(line >= 2 for line in lines)


layouts = st.sampled_from(["auto", "messages", "prompt_completion", "alpaca", "sharegpt", "columns", "preference"])


def options_for(layout: str) -> IngestOptions:
    if layout == "columns":
        return IngestOptions(layout="columns", user_col="question", assistant_col="answer", label_col="role")
    return IngestOptions(layout=layout, label_col="role", group_col="from")  # type: ignore[arg-type]


@fast
@given(values=st.lists(json_values, max_size=12), layout=layouts)
def test_arbitrary_json_values_as_lines(values: list[Any], layout: str) -> None:
    data = "".join(json.dumps(v) + "\n" for v in values).encode()
    result = ingest_bytes("values.jsonl", data, options_for(layout))
    if result is None:
        assert layout == "auto"
        return
    assert_every_line_once(result, len(values))
    not_objects = {i + 1 for i, v in enumerate(values) if not isinstance(v, dict)}
    rejected_as_not_object = {
        line for line, reason in result.rejected.select(F.LINE, F.REASON).iter_rows() if reason == "not_an_object"
    }
    assert rejected_as_not_object == not_objects
    if layout in ("messages", "preference"):  # kept as given: every object is kept
        assert result.frame.height == len(values) - len(not_objects)


@fast
@given(values=st.lists(json_values, max_size=12), layout=layouts)
def test_arbitrary_json_array(values: list[Any], layout: str) -> None:
    result = ingest_bytes("values.json", json.dumps(values).encode(), options_for(layout))
    if result is not None:
        assert_every_line_once(result, len(values))


@fast
@given(values=st.lists(json_values, max_size=12), layout=layouts)
def test_kept_records_are_canonical_json_with_their_id(values: list[Any], layout: str) -> None:
    data = "".join(json.dumps(v) + "\n" for v in values).encode()
    result = ingest_bytes("values.jsonl", data, options_for(layout))
    if result is not None:
        for record, row_id in result.frame.select(F.RECORD, F.ID).iter_rows():
            assert F.canonical_json(json.loads(record)) == record
            assert F.row_id(record) == row_id
