from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from factories import chat, write_jsonl

from ftdata import frame as F
from ftdata import plugins
from ftdata.hookspecs import hookimpl
from ftdata.pipeline import AccountingError, curate
from ftdata.stage import Stage, StageConfig, StageResult
from ftdata.store import Store


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def mixed_file(tmp_path: Path, support_rows: list[dict[str, Any]]) -> Path:
    rows: list[Any] = list(support_rows)
    rows.insert(3, "{not json")
    rows.insert(7, {"messages": [{"role": "user", "content": "only a question"},
                                 {"role": "assistant", "content": "an answer"},
                                 {"role": "user", "content": "a follow-up nobody answered"}]})
    rows.insert(9, {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]})
    return write_jsonl(tmp_path / "mixed.jsonl", rows)


def test_every_input_line_is_kept_or_rejected(mixed_file: Path, store_dir: Path) -> None:
    result = curate([mixed_file], dataset="support", store=store_dir)
    m = result.manifest
    kept = sum(s["rows"] for s in m["splits"].values())
    assert m["totals"]["input_rows"] == 23
    assert kept == 20 and m["totals"]["rejected"] == 3
    rejected = read_jsonl(result.version.path / "rejected.jsonl")
    by_line = {r["line"]: r for r in rejected}
    assert by_line[4]["stage"] == "ingest" and by_line[4]["reason"] == "invalid_json"
    assert by_line[4]["raw"] == "{not json" and by_line[4]["record"] is None
    assert by_line[8]["stage"] == "validate" and by_line[8]["reason"] == "last_message_not_assistant"
    assert by_line[8]["record"]["messages"][0]["content"] == "only a question"
    assert by_line[10]["stage"] == "validate" and by_line[10]["reason"] == "invalid_role"
    assert all(r["source"] == str(mixed_file) for r in rejected)
    # Per-stage accounting is recorded and adds up.
    for stage in m["stages"]:
        assert stage["rows_in"] + stage["generated"] == stage["rows_out"] + stage["rejected"]
    assert m["totals"]["rejected_by_reason"] == {
        "ingest.invalid_json": 1, "validate.invalid_role": 1, "validate.last_message_not_assistant": 1,
    }


def test_split_files_hold_the_records_and_index_lines_up(mixed_file: Path, store_dir: Path) -> None:
    result = curate([mixed_file], dataset="support", store=store_dir)
    version = result.version
    index = list(version.iter_rows_index())
    records = version.read_split("train") + version.read_split("validation")
    assert len(index) == len(records) == 20
    for row, record in zip(index, records, strict=True):
        assert row["id"] == F.row_id(F.canonical_json(record))
    assert {row["split"] for row in index} == {"train", "validation"}
    assert version.splits["train"]["rows"] + version.splits["validation"]["rows"] == 20
    assert version.verify() == []


def test_same_inputs_give_the_same_version_and_manifest(mixed_file: Path, tmp_path: Path) -> None:
    a = curate([mixed_file], dataset="support", store=tmp_path / "a")
    b = curate([mixed_file], dataset="support", store=tmp_path / "b")
    assert a.version.version == b.version.version
    ma = (a.version.path / "manifest.json").read_bytes()
    mb = (b.version.path / "manifest.json").read_bytes()
    strip = lambda raw: {k: v for k, v in orjson.loads(raw).items() if k != "created_at"}  # noqa: E731
    assert strip(ma) == strip(mb)
    # Byte-identical apart from the created_at line.
    drop_created = lambda raw: [ln for ln in raw.splitlines() if b'"created_at"' not in ln]  # noqa: E731
    assert drop_created(ma) == drop_created(mb)
    for name in ("train.jsonl", "validation.jsonl", "rejected.jsonl", "rows.jsonl"):
        assert (a.version.path / name).read_bytes() == (b.version.path / name).read_bytes()


def test_rerun_in_the_same_store_finds_the_existing_version(mixed_file: Path, store_dir: Path) -> None:
    first = curate([mixed_file], dataset="support", store=store_dir)
    again = curate([mixed_file], dataset="support", store=store_dir)
    assert first.created and not again.created
    assert again.version == first.version
    assert len(Store(store_dir).versions("support")) == 1


def test_a_different_seed_or_recipe_makes_a_new_version(mixed_file: Path, store_dir: Path) -> None:
    base = curate([mixed_file], dataset="support", store=store_dir)
    seeded = curate([mixed_file], dataset="support", store=store_dir, seed=7)
    resplit = curate([mixed_file], [("split", {"train": 0.5, "validation": 0.5})], dataset="support", store=store_dir)
    assert len({base.version.version, seeded.version.version, resplit.version.version}) == 3


class ExplodeConfig(StageConfig):
    after_rows: int = 0


def explode(frame: pl.DataFrame, config: ExplodeConfig, ctx: Any) -> StageResult:
    raise RuntimeError("disk on fire")


class LoseConfig(StageConfig):
    pass


def lose_a_row(frame: pl.DataFrame, config: LoseConfig, ctx: Any) -> StageResult:
    return StageResult(kept=frame.head(frame.height - 1))


class TestStages:
    @hookimpl
    def register_stages(self, register: Callable[[Any], None]) -> None:
        register(Stage("explode", "1", "filter", ExplodeConfig, explode))
        register(Stage("lose_a_row", "1", "filter", LoseConfig, lose_a_row))


@pytest.fixture
def test_stages() -> Any:
    plugin = TestStages()
    plugins.manager().register(plugin, "test-stages")
    yield plugin
    plugins.manager().unregister(plugin)


def test_a_failing_stage_leaves_no_version(mixed_file: Path, store_dir: Path, test_stages: Any) -> None:
    with pytest.raises(RuntimeError, match="disk on fire"):
        curate([mixed_file], [("explode", {})], dataset="support", store=store_dir)
    base = store_dir / "support"
    assert not base.exists() or list(base.iterdir()) == []


def test_a_stage_that_loses_rows_stops_the_run(mixed_file: Path, store_dir: Path, test_stages: Any) -> None:
    with pytest.raises(AccountingError, match="lose_a_row"):
        curate([mixed_file], [("lose_a_row", {})], dataset="support", store=store_dir)


def test_failure_mid_write_leaves_no_version_and_no_temp_dir(store_dir: Path) -> None:
    from ftdata.writer import write_version

    rows = F.make_frame([{F.RECORD: F.canonical_json(chat(f"q{i}", f"a{i}")), F.SOURCE: "x", F.LINE: i} for i in range(4)])
    # One row without a split: the writer has already written split files when it finds this out.
    final = rows.with_columns(pl.Series(F.SPLIT, ["train", "train", None, "validation"]))
    store = Store(store_dir)
    with pytest.raises(ValueError, match="1 rows have no split"):
        write_version(store, "support", "abc123", final, F.empty_rejects(), [], {},
                      header={"inputs": [], "seed": 0, "target_model": "gpt-4.1-mini", "parent": None},
                      labels_ingested=rows)
    assert list((store_dir / "support").iterdir()) == []


def test_labels_are_reported_before_and_after(tmp_path: Path, store_dir: Path, support_rows: list[dict[str, Any]]) -> None:
    rows = [{**r, "category": "billing" if i % 4 else "security"} for i, r in enumerate(support_rows)]
    path = write_jsonl(tmp_path / "labelled.jsonl", rows)
    from ftdata.ingest import IngestOptions

    result = curate([path], dataset="support", store=store_dir, ingest_options=IngestOptions(label_col="category"))
    labels = result.manifest["labels"]
    assert labels["ingested"] == {"billing": 15, "security": 5}
    assert labels["final"] == {"billing": 15, "security": 5}
    split_labels = {name: s["labels"] for name, s in result.manifest["splits"].items()}
    assert sum(d.get("security", 0) for d in split_labels.values()) == 5


def test_a_version_reads_back_when_index_columns_are_set_only_late(tmp_path: Path, store_dir: Path) -> None:
    """rows.jsonl columns null for the first hundreds of rows and set later (cluster, group) still load."""
    from ftdata.ingest import IngestOptions
    from ftdata.writer import load_version_frame

    rows = [{**chat(f"Question number {i} about invoices?", f"Answer {i}."), "team": None if i < 300 else "t1"}
            for i in range(320)]
    path = write_jsonl(tmp_path / "late.jsonl", rows)
    result = curate([path], dataset="late", store=store_dir, ingest_options=IngestOptions(group_col="team"))
    frame = load_version_frame(result.version)
    assert frame.height == 320
    assert frame.get_column(F.GROUP).drop_nulls().unique().to_list() == ["t1"]


def test_split_files_are_the_canonical_records_byte_for_byte(tmp_path: Path, store_dir: Path) -> None:
    tricky = ['He said "no", then left;\ttabs, commas', "line one\nline two\r\n", "caf\u00e9 \u2028 \U0001f600 \\ back", "plain"]
    rows = [{"messages": [{"role": "user", "content": f"{text} #{i}"}, {"role": "assistant", "content": text}]}
            for i, text in enumerate(tricky * 5)]
    data = tmp_path / "tricky.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    version = curate([data], store=store_dir).version
    for name in ("train", "validation"):
        raw = (version.path / f"{name}.jsonl").read_bytes()
        expected = "".join(F.canonical_json(r) + "\n" for r in version.read_split(name)).encode()
        assert raw == expected and raw.count(b"\n") == version.splits[name]["rows"]
        assert version.splits[name]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert version.splits[name]["bytes"] == len(raw)
    assert sum(version.splits[n]["rows"] for n in ("train", "validation")) == 20
