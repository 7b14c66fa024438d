"""The split stage: clusters, groups and exact copies never straddle splits; stratified; seeded."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from factories import chat
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages.split import STAGE, SplitConfig, parse_split, split_check


def row(i: int, label: str | None = None, cluster: str | None = None, group: str | None = None, text: str | None = None) -> dict[str, Any]:
    return {
        F.RECORD: F.canonical_json(chat(text or f"question {i}", "answer")),
        F.SOURCE: "t.jsonl",
        F.LINE: i + 1,
        F.LABEL: label,
        F.CLUSTER: cluster,
        F.GROUP: group,
    }


def splits_of(frame: pl.DataFrame, column: str) -> dict[str, set[str]]:
    """key → the splits its rows landed in."""
    pairs = frame.filter(pl.col(column).is_not_null()).select(column, F.SPLIT).unique().rows()
    out: dict[str, set[str]] = {}
    for key, split in pairs:
        out.setdefault(key, set()).add(split)
    return out


keys = st.one_of(st.none(), st.sampled_from(["k0", "k1", "k2", "k3", "k4", "k5"]))


@settings(max_examples=60, deadline=None)
@given(
    assignments=st.lists(st.tuples(keys, keys, st.sampled_from([None, "a", "b"]), st.booleans()), min_size=1, max_size=40),
    ratios=st.sampled_from([(0.9, 0.1, 0.0), (0.8, 0.1, 0.1), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0), (0.34, 0.33, 0.33)]),
    seed=st.integers(0, 3),
)
def test_no_cluster_group_or_copy_straddles_splits(
    assignments: list[tuple[str | None, str | None, str | None, bool]], ratios: tuple[float, float, float], seed: int
) -> None:
    # A True flag makes the row an exact copy of row 0 (same record, same id).
    rows = [
        row(i, label, cluster, group, text="the copied question" if copy else None)
        for i, (cluster, group, label, copy) in enumerate(assignments)
    ]
    frame = F.make_frame(rows)
    config = SplitConfig(train=ratios[0], validation=ratios[1], test=ratios[2])
    result = STAGE.run(frame, config, Context(seed=seed))
    kept = result.kept
    assert kept.height == frame.height and result.rejected.is_empty()
    assert kept.get_column(F.SPLIT).null_count() == 0
    assert set(kept.get_column(F.SPLIT)) <= {name for name, r in zip(("train", "validation", "test"), ratios) if r > 0}
    for column in (F.CLUSTER, F.GROUP, F.ID):
        assert all(len(s) == 1 for s in splits_of(kept, column).values())
    assert result.sections["split_check"]["cross_split_overlap"] == {"id": 0, "cluster": 0, "group": 0}
    again = STAGE.run(frame, config, Context(seed=seed))
    assert again.kept.get_column(F.SPLIT).to_list() == kept.get_column(F.SPLIT).to_list()


def test_stratified_ratios_on_a_thousand_rows() -> None:
    labels = ["billing"] * 700 + ["tech"] * 250 + ["legal"] * 50
    frame = F.make_frame(row(i, label) for i, label in enumerate(labels))
    result = STAGE.run(frame, SplitConfig(train=0.8, validation=0.1, test=0.1), Context(seed=1))
    counts = dict(result.kept.group_by(F.LABEL, F.SPLIT).len().select(pl.concat_str(F.LABEL, F.SPLIT, separator="/"), "len").rows())
    for label, n in (("billing", 700), ("tech", 250), ("legal", 50)):
        for split, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
            assert abs(counts[f"{label}/{split}"] - n * share) <= 1, (label, split)
    assert result.sections["split_check"]["rows"] == {"train": 800, "validation": 100, "test": 100}


def test_groups_and_clusters_are_joined_into_one_unit() -> None:
    # Cluster c1 links rows 0-1, group g links rows 1-2: all three land together.
    rows = [row(0, cluster="c1"), row(1, cluster="c1", group="g"), row(2, group="g")]
    rows += [row(i) for i in range(3, 30)]
    result = STAGE.run(F.make_frame(rows), SplitConfig(train=0.5, validation=0.5), Context(seed=0))
    first_three = result.kept.head(3).get_column(F.SPLIT).to_list()
    assert len(set(first_three)) == 1
    assert result.stats["units"] == 28


def test_grouping_can_be_turned_off() -> None:
    rows = [row(i, group="everyone") for i in range(20)]
    together = STAGE.run(F.make_frame(rows), SplitConfig(), Context())
    assert set(together.kept.get_column(F.SPLIT)) == {"train"}
    apart = STAGE.run(F.make_frame(rows), SplitConfig(group_by=False), Context())
    assert set(apart.kept.get_column(F.SPLIT)) == {"train", "validation"}


@pytest.mark.parametrize("n", [2, 3, 5])
def test_tiny_data_still_gets_a_validation_row(n: int) -> None:
    for seed in range(10):
        result = STAGE.run(F.make_frame(row(i) for i in range(n)), SplitConfig(), Context(seed=seed))
        rows = result.sections["split_check"]["rows"]
        assert rows["validation"] >= 1 and rows["train"] >= 1 and rows["test"] == 0


def test_a_single_unit_goes_to_train() -> None:
    result = STAGE.run(F.make_frame([row(0, group="g"), row(1, group="g")]), SplitConfig(), Context())
    assert result.kept.get_column(F.SPLIT).to_list() == ["train", "train"]


def test_seed_changes_the_assignment_and_empty_input_works() -> None:
    frame = F.make_frame(row(i) for i in range(50))
    outcomes = {tuple(STAGE.run(frame, SplitConfig(), Context(seed=s)).kept.get_column(F.SPLIT)) for s in range(3)}
    assert len(outcomes) == 3
    empty = STAGE.run(F.empty_frame(), SplitConfig(), Context())
    assert empty.kept.height == 0 and F.SPLIT in empty.kept.columns


def test_split_check_reports_straddling_keys() -> None:
    frame = F.make_frame([row(0, cluster="c"), row(1, cluster="c", group="g"), row(2, group="g")])
    assigned = frame.with_columns(pl.Series(F.SPLIT, ["train", "validation", "validation"]))
    assert split_check(assigned) == {
        "cross_split_overlap": {"id": 0, "cluster": 1, "group": 0},
        "rows": {"train": 1, "validation": 2, "test": 0},
    }


def test_ratios_from_flags() -> None:
    assert parse_split("90/10/0") == {"train": 0.9, "validation": 0.1, "test": 0.0}
    assert parse_split("8/1/1") == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert parse_split("0.7/0.3") == {"train": 0.7, "validation": 0.3, "test": 0.0}
    with pytest.raises(ValueError, match="expected"):
        parse_split("90-10")
    build = STAGE.config_from_cli
    assert build is not None
    none = {"split": None, "train": None, "validation": None, "test": None}
    assert build(none) == SplitConfig()
    assert build({**none, "split": "80/10/10"}) == SplitConfig(train=0.8, validation=0.1, test=0.1)
    assert build({**none, "validation": 0.2}) == SplitConfig(train=0.8, validation=0.2)
    assert build({**none, "train": 0.7, "test": 0.1}) == SplitConfig(train=0.7, validation=0.2, test=0.1)
    with pytest.raises(ValueError, match="not both"):
        build({**none, "split": "90/10", "train": 0.9})
    with pytest.raises(ValidationError, match="must be 1"):
        SplitConfig(train=0.9, validation=0.2)


def test_ids_that_are_not_sha256_hex_still_split_deterministically() -> None:
    rows = [{**row(i), F.ID: f"row-{i}"} for i in range(30)]
    first = STAGE.run(F.make_frame(rows), SplitConfig(), Context(seed=2)).kept.get_column(F.SPLIT).to_list()
    again = STAGE.run(F.make_frame(rows[::-1]), SplitConfig(), Context(seed=2)).kept.get_column(F.SPLIT).to_list()
    assert again == first[::-1]
    assert first.count("validation") == 3
