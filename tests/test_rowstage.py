"""Row stages fused into ingest give exactly what the same stages give run over the frame afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ftdata import frame as F
from ftdata.ingest import IngestOptions, ingest
from ftdata.ingest.jsonl import read_jsonl
from ftdata.pipeline import curate
from ftdata.rowstage import RowStep, merge_stats
from ftdata.stage import Context
from ftdata.stages import normalize, validate
from ftdata.stages.normalize import NormalizeConfig
from ftdata.stages.validate import ValidateConfig

SYSTEM = "  You are terse. "
STEPS = [
    RowStep("normalize", normalize.NormalizeOp, NormalizeConfig(system=SYSTEM)),
    RowStep("validate", validate.ValidateOp, ValidateConfig()),
]


def messy_rows(n: int) -> list[str]:
    """Chat rows with text normalize changes, rows without a system prompt, and rows validate rejects."""
    rows = []
    for i in range(n):
        user = f"  Question {i} about the cafe\u0301 \n"
        messages: list[dict[str, Any]] = [{"role": "user", "content": user}, {"role": "assistant", "content": f"Answer {i}."}]
        if i % 3 == 0:
            messages.insert(0, {"role": "system", "content": "Existing system prompt."})
        if i % 7 == 0:
            messages = messages[:-1]  # ends on the user: missing_assistant_message
        if i % 11 == 0:
            messages[-1]["weight"] = 2  # invalid_weight (and more problems on some rows)
        rows.append(json.dumps({"messages": messages, "category": f"c{i % 3}"}))
    rows[5] = "{not json"  # ingest's own reject
    return rows


def frame_path(result_frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """normalize then validate over an ingested frame, the way run_stages would."""
    ctx = Context()
    normalized = normalize.STAGE.run(result_frame, NormalizeConfig(system=SYSTEM), ctx)
    validated = validate.STAGE.run(normalized.kept, ValidateConfig(), ctx)
    rejected = pl.concat([normalized.rejected, validated.rejected])
    return validated.kept, rejected, [normalized.stats, validated.stats]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_fused_ingest_gives_the_frame_paths_rows_rejects_and_stats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows.{suffix}"
    if suffix == "jsonl":
        rows = messy_rows(60)
        # Keys out of order in a bad content part: the detail quotes it, the same way on both paths.
        rows[8] = json.dumps({"messages": [{"role": "user", "content": [{"type": "foo", "text": "x"}]},
                                           {"role": "assistant", "content": "ok"}], "category": "c2"})
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    elif suffix == "parquet":
        # Binary text (which ingest writes as text) and a NaN weight (null in JSON).
        pl.DataFrame({
            "messages": [
                [{"role": "user", "content": f"  q{i} cafe\u0301 ".encode(), "weight": None},
                 {"role": "assistant", "content": f"a{i}".encode() if i % 5 else b"", "weight": float("nan") if i == 3 else None}]
                for i in range(12)
            ],
            "category": [f"c{i % 2}" for i in range(12)],
        }).write_parquet(path)
    else:
        lines = ["question,answer,category"] + [f'"  q{i} cafe\u0301 ","a{i}  ",c{i % 2}' for i in range(20)]
        lines[4] = '"q3",,c1'  # an empty answer: validate rejects it
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = IngestOptions(label_col="category")
    plain = ingest([path], options)
    fused = ingest([path], options, row_steps=STEPS)
    kept, rejected, stats = frame_path(plain.frame)

    assert_frame_equal(fused.frame, kept)
    assert_frame_equal(fused.stage_rejected, rejected)
    assert fused.stage_stats == stats
    assert_frame_equal(fused.rejected, plain.rejected)  # ingest's own rejects do not change
    assert stats[0]["rows_changed"] > 0 and stats[0]["system_added"] > 0
    assert set(rejected.get_column(F.STAGE)) == {"validate"}
    assert rejected.height > 0
    # Normalised text is what both paths keep and hash.
    assert all("caf\u00e9" in r and "\u0301" not in r for r in kept.get_column(F.RECORD))
    assert kept.get_column(F.ID).to_list() == [F.row_id(r) for r in kept.get_column(F.RECORD)]


def test_parallel_workers_merge_rejects_and_stats_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(messy_rows(3000)) + "\n", encoding="utf-8")
    options = IngestOptions(label_col="category")
    serial = read_jsonl(path, "rows.jsonl", options, workers=1, row_steps=STEPS)
    parallel = read_jsonl(path, "rows.jsonl", options, workers=2, parallel_min_bytes=0, row_steps=STEPS)
    assert_frame_equal(serial.frame, parallel.frame)
    assert_frame_equal(serial.stage_rejected, parallel.stage_rejected)
    assert serial.stage_stats == parallel.stage_stats
    lines = parallel.stage_rejected.get_column(F.LINE).to_list()
    assert lines == sorted(lines) and lines[0] == 1  # row 0: i % 7 == 0, no assistant reply
    assert parallel.stage_stats[1]["problems_by_reason"]["missing_assistant_message"] == len(
        [i for i in range(3000) if i % 7 == 0 and i != 5]
    )


def test_merge_stats_sums_nested_counts() -> None:
    a = {"rows_changed": 2, "problems_by_reason": {"x": 1, "y": 2}}
    b = {"rows_changed": 3, "problems_by_reason": {"y": 1, "z": 4}}
    assert merge_stats(a, b) == {"rows_changed": 5, "problems_by_reason": {"x": 1, "y": 3, "z": 4}}


def test_curate_reports_fused_stages_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(messy_rows(60)) + "\n", encoding="utf-8")
    result = curate([path], [("normalize", {"system": SYSTEM}), ("split", {})], store=tmp_path / "store",
                    ingest_options=IngestOptions(label_col="category"))
    stages = {s["name"]: s for s in result.manifest["stages"]}
    invalid = [i for i in range(60) if i != 5 and (i % 7 == 0 or i % 11 == 0)]
    assert stages["ingest"]["rows_out"] == 59
    assert stages["normalize"]["rows_in"] == 59 and stages["normalize"]["rows_out"] == 59
    assert stages["normalize"]["stats"] == {"rows_changed": 59, "system_added": 59 - len([i for i in range(60) if i % 3 == 0 and i != 5])}
    assert (stages["validate"]["rows_in"], stages["validate"]["rows_out"]) == (59, 59 - len(invalid))
    assert stages["split"]["rows_in"] == 59 - len(invalid)
    summary = {s["name"]: s for s in result.summary["stages"]}
    assert summary["normalize"].get("in_ingest") and summary["validate"].get("in_ingest")
    assert "in_ingest" not in summary["split"]
    rejected = [json.loads(line) for line in result.version.path.joinpath("rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected if r["stage"] == "validate"] == [i + 1 for i in invalid]
    assert [r["stage"] for r in rejected].count("ingest") == 1
    assert result.manifest["labels"]["ingested"] == {"c0": 20, "c1": 20, "c2": 19}  # line 6 (c2) is not JSON


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["normalize"], ["normalize", "validate", "split"]),
        (["validate"], ["normalize", "validate", "split"]),
        (["exact_dedup"], ["normalize", "validate", "exact_dedup", "split"]),
        (["validate", "normalize"], ["validate", "normalize", "split"]),
    ],
)
def test_required_stages_are_added_in_their_order(given: list[str], expected: list[str]) -> None:
    from ftdata.recipe import build_steps

    assert [s.stage.name for s in build_steps([(name, {}) for name in given])] == expected


def test_a_row_too_deep_to_serialise_is_counted_by_no_row_stage(tmp_path: Path) -> None:
    deep: Any = "bottom"
    for _ in range(300):  # orjson reads 1024 levels but writes 254
        deep = [deep]
    rows = messy_rows(10)
    rows[3] = json.dumps({"messages": [{"role": "user", "content": " padded "}], "category": "c0", "deep": deep})
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    plain = ingest([path], IngestOptions(label_col="category"))
    fused = ingest([path], IngestOptions(label_col="category"), row_steps=STEPS)
    _, _, stats = frame_path(plain.frame)
    assert fused.stage_stats == stats
    assert fused.rejected.get_column(F.REASON).to_list() == ["too_deeply_nested", "invalid_json"]  # lines 4 and 6
