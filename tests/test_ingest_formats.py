"""Formats, encodings and broken input: every line/row is kept or rejected with file, line and reason."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import click
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ftdata import frame as F
from ftdata.ingest import IngestError, IngestOptions, ingest, ingest_cli_options, ingest_options_from_cli
from ftdata.ingest.jsonl import iter_lines, read_jsonl

DATA = Path(__file__).parent / "data" / "ingest"


def lines_and_reasons(frame: pl.DataFrame) -> list[tuple[int, str]]:
    return list(frame.select(F.LINE, F.REASON).iter_rows())


def test_bom_and_no_bom_csv_give_the_same_rows() -> None:
    plain, bom = ingest([DATA / "columns.csv"]), ingest([DATA / "bom.csv"])
    assert plain.frame.get_column(F.ID).to_list() == bom.frame.get_column(F.ID).to_list()
    assert bom.inputs[0]["layout"] == "columns"  # the header's first column is "question", not "\ufeffquestion"
    assert bom.inputs[0]["bytes"] == plain.inputs[0]["bytes"] + 3
    assert bom.inputs[0]["sha256"] != plain.inputs[0]["sha256"]


def test_bom_jsonl_first_line_parses() -> None:
    result = ingest([DATA / "bom.jsonl"])
    assert result.rejected.height == 0
    assert json.loads(result.frame.item(0, F.RECORD))["messages"][0] == {"role": "user", "content": "Hi"}


def test_invalid_utf8_jsonl_line_is_rejected_and_the_rest_kept() -> None:
    result = ingest([DATA / "invalid_utf8.jsonl"])
    assert result.frame.get_column(F.LINE).to_list() == [1, 3]
    assert lines_and_reasons(result.rejected) == [(2, "invalid_utf8")]
    assert result.rejected.item(0, F.DETAIL) == "invalid UTF-8 at byte 17 of the line"
    assert result.rejected.item(0, F.RAW) == '{"prompt": "bad \\xc3( byte", "completion": "no"}'
    assert result.rejected.item(0, F.STAGE) == "ingest"
    assert result.rejected.item(0, F.SOURCE) == str(DATA / "invalid_utf8.jsonl")


def test_invalid_utf8_csv_row_is_rejected_and_the_rest_kept() -> None:
    result = ingest([DATA / "invalid_utf8.csv"])
    assert result.frame.get_column(F.LINE).to_list() == [2, 4]
    assert lines_and_reasons(result.rejected) == [(3, "invalid_utf8")]
    assert result.rejected.item(0, F.RAW) == "bad \\xff\\xfe bytes?,no"


def test_broken_json_lines_are_rejected_with_their_text() -> None:
    result = ingest([DATA / "broken_json.jsonl"])
    assert result.frame.get_column(F.LINE).to_list() == [1, 4]
    assert lines_and_reasons(result.rejected) == [(2, "invalid_json"), (3, "invalid_json")]
    assert result.rejected.get_column(F.RAW).to_list() == [
        '{"prompt": "truncated", "compl',
        '{"prompt": "trailing", "completion": "comma",}',
    ]
    assert result.inputs[0]["rows"] == 4


def test_ragged_csv_rows_are_rejected() -> None:
    result = ingest([DATA / "ragged_row.csv"])
    assert result.frame.get_column(F.LINE).to_list() == [2, 5]
    assert lines_and_reasons(result.rejected) == [(3, "ragged_row"), (4, "ragged_row")]
    assert result.rejected.get_column(F.DETAIL).to_list() == [
        "3 fields where the header has 2",
        "1 fields where the header has 2",
    ]
    assert result.rejected.get_column(F.RAW).to_list() == ["second?,two,extra", "third?"]


def test_blank_lines_are_accounted_for_and_crlf_is_accepted() -> None:
    result = ingest([DATA / "blank_line.jsonl"])
    assert result.frame.get_column(F.LINE).to_list() == [1, 4, 6]  # line 6 has no final newline
    assert lines_and_reasons(result.rejected) == [(2, "blank_line"), (3, "blank_line"), (5, "blank_line")]
    assert result.inputs[0]["rows"] == 6


def test_json_values_that_are_not_objects_are_rejected() -> None:
    result = ingest([DATA / "not_an_object.jsonl"])
    assert lines_and_reasons(result.rejected) == [(n, "not_an_object") for n in (2, 3, 4, 5)]
    assert result.rejected.get_column(F.DETAIL).to_list() == [
        "holds a JSON array, not an object",
        "holds a JSON string, not an object",
        "holds a JSON null, not an object",
        "holds a JSON number, not an object",
    ]


def test_several_files_in_one_call_keep_order_and_sources() -> None:
    paths = [DATA / "columns.csv", DATA / "ndjson_input.ndjson", str(DATA / "broken_json.jsonl")]
    result = ingest(paths)
    assert result.frame.select(F.SOURCE, F.LINE).rows() == [
        (str(paths[0]), 2),
        (str(paths[0]), 3),
        (str(paths[0]), 6),
        (str(paths[1]), 1),
        (str(paths[2]), 1),
        (str(paths[2]), 4),
    ]
    assert [(i["format"], i["rows"]) for i in result.inputs] == [("csv", 3), ("jsonl", 1), ("jsonl", 4)]
    assert [i["path"] for i in result.inputs] == [str(p) for p in paths]
    assert result.inputs[2]["sha256"] == hashlib.sha256((DATA / "broken_json.jsonl").read_bytes()).hexdigest()
    assert result.frame.schema == pl.Schema(F.SCHEMA)
    assert result.rejected.schema == pl.Schema(F.REJECT_SCHEMA)


def test_ids_are_sha256_of_the_canonical_record_and_deterministic(tmp_path: Path) -> None:
    first, second = ingest([DATA / "chat_messages.jsonl"]), ingest([DATA / "chat_messages.jsonl"])
    assert_frame_equal(first.frame, second.frame)
    record = first.frame.item(0, F.RECORD)
    assert record == F.canonical_json(json.loads(record))
    assert first.frame.item(0, F.ID) == F.row_id(record)
    # The same example from another format gets the same id.
    jsonl, csv = tmp_path / "qa.jsonl", tmp_path / "qa.csv"
    jsonl.write_text(json.dumps({"answer": "A", "question": "Q"}) + "\n", encoding="utf-8")
    csv.write_text("question,answer\nQ,A\n", encoding="utf-8")
    ids = ingest([jsonl, csv]).frame.get_column(F.ID).to_list()
    assert ids[0] == ids[1] == F.row_id('{"messages":[{"content":"Q","role":"user"},{"content":"A","role":"assistant"}]}')


def test_empty_files_hold_no_rows(tmp_path: Path) -> None:
    paths = [tmp_path / "empty.jsonl", tmp_path / "empty.csv", tmp_path / "empty.json"]
    for path in paths[:2]:
        path.write_bytes(b"")
    paths[2].write_text("[]", encoding="utf-8")
    result = ingest(paths)
    assert result.frame.height == 0 and result.rejected.height == 0
    assert [(i["rows"], i["layout"]) for i in result.inputs] == [(0, None), (0, None), (0, None)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.txt", "x", "data.txt: unknown file type '.txt'; ftdata reads .csv, .jsonl, .ndjson, .json, .parquet"),
        ("data.json", '{"messages": []}', "data.json: holds a JSON object; a .json input must hold one array of objects"),
        ("lines.json", '{"a": 1}\n{"a": 2}\n', "lines.json:2: not valid JSON (unexpected content after document, column 1) (one JSON value per line? name"),
        ("bad.parquet", "not parquet", "bad.parquet: cannot read as Parquet"),
        ("dupes.csv", "question,answer,answer\n", "dupes.csv:1: the CSV header repeats 'answer'"),
    ],
)
def test_file_level_problems_raise_ingest_error(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(IngestError) as error:
        ingest([path])
    assert str(error.value).startswith(f"{tmp_path}/{message}")


def test_missing_file_and_no_files_raise_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"nope\.jsonl: no such file$"):
        ingest([tmp_path / "nope.jsonl"])
    with pytest.raises(IngestError, match="no input files given"):
        ingest([])


def test_lines_spanning_many_chunks_are_joined(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    content = b'\xef\xbb\xbf{"a": "a long first line"}\n\nshort\n' + b"x" * 50 + b"\n" + b"tail"
    path.write_bytes(content)
    for chunk_bytes in (1, 2, 3, 7, 64, 1 << 20):
        lines = list(iter_lines(path, 0, len(content), chunk_bytes=chunk_bytes))
        assert lines == [b'{"a": "a long first line"}', b"", b"short", b"x" * 50, b"tail"], chunk_bytes


def test_parallel_reading_matches_serial_reading(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    rows = [json.dumps({"prompt": f"question {i}", "completion": f"answer {i}"}) for i in range(3000)]
    rows[10], rows[2900] = "{broken", ""  # a bad line in the first and in the last byte range
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode())
    options = IngestOptions()
    serial = read_jsonl(path, "many.jsonl", options, workers=1)
    parallel = read_jsonl(path, "many.jsonl", options, workers=2, parallel_min_bytes=0)
    assert_frame_equal(serial.frame, parallel.frame)
    assert_frame_equal(serial.rejected, parallel.rejected)
    assert (serial.rows, serial.sha256) == (parallel.rows, parallel.sha256) == (3000, hashlib.sha256(path.read_bytes()).hexdigest())
    assert lines_and_reasons(parallel.rejected) == [(11, "invalid_json"), (2901, "blank_line")]


def test_cli_flags_build_ingest_options() -> None:
    seen: dict[str, object] = {}
    command = click.Command("curate", params=ingest_cli_options(), callback=lambda **params: seen.update(params))
    command.main(["--layout", "columns", "--user-col", "q", "--assistant-col", "a", "--label-col", "topic"], standalone_mode=False)
    assert ingest_options_from_cli(seen) == IngestOptions(layout="columns", user_col="q", assistant_col="a", label_col="topic")
    assert ingest_options_from_cli({"other_stage_flag": 1}) == IngestOptions()
    assert [o.name for o in ingest_cli_options()] == ["layout", "user_col", "assistant_col", "system_col", "label_col", "group_col"]


def test_a_record_the_csv_module_refuses_is_rejected_and_the_file_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "long_field.csv"
    path.write_text("question,answer\nshort?,yes\nlong?," + "x" * 100 + "\nlast?,ok\n", encoding="utf-8")
    previous = csv.field_size_limit(50)  # stands in for a field beyond the 2 GiB limit ingest sets
    try:
        result = ingest([path])
    finally:
        csv.field_size_limit(previous)
    assert result.frame.get_column(F.LINE).to_list() == [2, 4]
    assert lines_and_reasons(result.rejected) == [(3, "invalid_csv")]
    assert result.rejected.item(0, F.DETAIL) == "field larger than field limit (50)"


def test_nesting_deeper_than_orjson_writes_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    deep = "[" * 300 + "]" * 300
    path.write_text('{"messages": []}\n{"messages": ' + deep + "}\n", encoding="utf-8")
    result = ingest([path])
    assert lines_and_reasons(result.rejected) == [(2, "too_deeply_nested")]
    assert result.rejected.item(0, F.RAW) == '{"messages": ' + deep + "}"
