"""`ftdata review` sheets (export) and the `review` stage (apply) through `ftdata curate --review-file`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import write_jsonl

from ftdata.cli import cli
from ftdata.pipeline import curate
from ftdata.stage import Context
from ftdata.store import Store, Version
from ftdata.synth.review import STAGE, COLUMNS, ReviewConfig, ReviewSheetError, read_sheet, review_parent, sheet_rows
from ftdata.writer import load_version_frame


@pytest.fixture
def version(tmp_path: Path, store_dir: Path, support_rows: list[dict[str, Any]]) -> Version:
    source = write_jsonl(tmp_path / "support.jsonl", support_rows)
    return curate([source], dataset="support", store=store_dir).version


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_export_lists_rows_with_an_empty_accept_column(version: Version, store_dir: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    result = invoke("review", version.ref, "--origin", "all", "-o", str(sheet), "--store", str(store_dir))
    assert result.exit_code == 0, result.output
    rows = read_csv(sheet)
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 20
    index = {entry["id"]: entry for entry in version.iter_rows_index()}
    for row in rows:
        assert row["dataset"] == "support" and row["version"] == version.version
        assert row["accept"] == "" and row["origin"] == "human" and row["seed_ids"] == ""
        assert row["split"] == index[row["row_id"]]["split"]
        assert row["user"].startswith("How do I ") and row["assistant"]
    # Only synthetic rows by default: this version has none.
    assert invoke("review", version.ref, "-o", str(tmp_path / "none.csv"), "--store", str(store_dir)).exit_code == 0
    assert read_csv(tmp_path / "none.csv") == []


def test_jsonl_sheet_and_stdout(version: Version, store_dir: Path) -> None:
    result = invoke("review", version.ref, "--origin", "human", "--format", "jsonl", "--store", str(store_dir))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 20 and set(lines[0]) == set(COLUMNS) and lines[0]["seed_ids"] == []
    assert [line["row_id"] for line in lines] == [row["row_id"] for row in sheet_rows(version, "all")]
    assert result.stderr.strip() == f"20 human rows of {version.ref} to review → stdout"


def test_review_file_makes_a_child_version_without_the_rejected_rows(
    version: Version, store_dir: Path, tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.csv"
    invoke("review", version.ref, "--origin", "all", "-o", str(sheet), "--store", str(store_dir))
    rows = read_csv(sheet)
    rows[0]["accept"], rows[3]["accept"], rows[5]["accept"], rows[6]["accept"] = "no", "N", "yes", "FALSE"
    write_csv(sheet, rows)
    assert review_parent(sheet) == version.ref

    result = invoke("curate", "--review-file", str(sheet), "--store", str(store_dir), "--json")
    assert result.exit_code == 0, result.output
    child = Store(store_dir).resolve(json.loads(result.stdout)["ref"])
    manifest = child.manifest
    assert manifest["parent"] == version.version
    assert manifest["totals"]["rejected_by_reason"] == {"review.rejected_in_review": 3}
    [stage] = [s for s in manifest["stages"] if s["name"] == "review"]
    assert stage["stats"] == {"sheet_rows": 20, "marked_reject": 3, "marked_keep": 1, "undecided": 16,
                              "not_in_version": 0}
    rejected = [json.loads(line) for line in (child.path / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["row_id"] for r in rejected) == sorted(rows[i]["row_id"] for i in (0, 3, 6))
    assert {r["detail"] for r in rejected} == {"marked 'no' in sheet.csv:2", "marked 'N' in sheet.csv:5",
                                               "marked 'FALSE' in sheet.csv:8"}
    # The other rows keep their splits.
    before = {e["id"]: e["split"] for e in version.iter_rows_index()}
    after = {e["id"]: e["split"] for e in child.iter_rows_index()}
    assert len(after) == 17 and all(before[i] == split for i, split in after.items())


def test_malformed_sheets_are_plain_errors(version: Version, tmp_path: Path) -> None:
    good = {"dataset": "support", "version": version.version, "row_id": "a" * 64, "accept": ""}
    sheet = tmp_path / "s.csv"

    sheet.write_text("row_id,accept\nabc,no\n", encoding="utf-8")
    with pytest.raises(ReviewSheetError, match=r"s.csv:1: the header lacks dataset, version"):
        review_parent(sheet)
    write_csv(sheet, [good, {**good, "accept": "maybe"}])
    with pytest.raises(ReviewSheetError, match=r"s.csv:3: accept must be empty, yes/y/true/1 or no/n/false/0, got 'maybe'"):
        read_sheet(sheet)
    write_csv(sheet, [good, {**good, "version": "other"}])
    with pytest.raises(ReviewSheetError, match=r"s.csv:3: row is from support@other, earlier rows from support@"):
        read_sheet(sheet)
    write_csv(sheet, [])
    with pytest.raises(ReviewSheetError, match="has no rows"):
        read_sheet(sheet)
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(json.dumps(good) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(ReviewSheetError, match=r"s.jsonl:2: not a JSON object"):
        read_sheet(jsonl)


def test_a_changed_sheet_is_refused(version: Version, store_dir: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.jsonl"
    invoke("review", version.ref, "--origin", "all", "-o", str(sheet), "--store", str(store_dir))
    config = ReviewConfig(sheet=str(sheet), sheet_sha256="0" * 64)
    with pytest.raises(ReviewSheetError, match="changed since this recipe was made"):
        STAGE.run(load_version_frame(version), config, Context())
