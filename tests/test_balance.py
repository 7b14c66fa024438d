"""The balance stage: which rows go (`balanced_out`) in each mode, seeded and order-independent."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
import pytest
from factories import chat
from pydantic import ValidationError

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages.balance import STAGE, BalanceConfig, parse_proportions


def row(i: int, label: str | None, origin: str = "human", cluster: str | None = None) -> dict[str, Any]:
    return {
        F.RECORD: F.canonical_json(chat(f"question {i}", f"answer {i}")),
        F.SOURCE: "t.jsonl",
        F.LINE: i,
        F.LABEL: label,
        F.ORIGIN: origin,
        F.CLUSTER: cluster,
    }


def lines(frame: pl.DataFrame) -> list[int]:
    return sorted(frame.get_column(F.LINE).to_list())


def test_cap_drops_synthetic_rows_first_and_leaves_unlabelled_rows() -> None:
    rows = [row(i, "billing") for i in range(1, 5)]
    rows += [row(5, "billing", "synthetic:openai:gpt-4.1-mini"), row(6, "billing", "synthetic:openai:gpt-4.1-mini")]
    rows += [row(7, "tech"), row(8, None), row(9, None)]
    result = STAGE.run(F.make_frame(rows), BalanceConfig(mode="cap", cap_per_class=4), Context())
    assert lines(result.rejected) == [5, 6]
    assert set(result.rejected.get_column(F.REASON)) == {"balanced_out"}
    assert set(result.rejected.get_column(F.DETAIL)) == {"class 'billing': capped at 4 per class"}
    assert lines(result.kept) == [1, 2, 3, 4, 7, 8, 9]
    assert result.sections == {
        "labels": {
            "before": {"(none)": 2, "billing": 6, "tech": 1},
            "after": {"(none)": 2, "billing": 4, "tech": 1},
        }
    }
    assert result.stats == {"mode": "cap", "targets": {"billing": 4, "tech": 1}, "balanced_out": 2}


def test_downsample_to_the_smallest_class_prefers_dropping_cluster_repeats() -> None:
    rows = [row(1, "a", cluster="c1"), row(2, "a", cluster="c1"), row(3, "a", cluster="c1"), row(4, "a")]
    rows += [row(5, "b"), row(6, "b")]
    result = STAGE.run(F.make_frame(rows), BalanceConfig(mode="downsample"), Context())
    # One row of cluster c1 represents it; the two that repeat it go before the distinct row 4.
    assert len(set(lines(result.rejected)) & {1, 2, 3}) == 2
    assert 4 in lines(result.kept)
    assert set(result.rejected.get_column(F.DETAIL)) == {"class 'a': downsampled to the smallest class (2)"}
    assert result.sections["labels"]["after"] == {"a": 2, "b": 2}


def test_proportions_keep_the_largest_subset_with_the_target_shares() -> None:
    rows = [row(i, "a") for i in range(10)] + [row(10 + i, "b") for i in range(4)] + [row(20 + i, "c") for i in range(3)]
    config = BalanceConfig(mode="proportions", proportions={"a": 0.5, "b": 0.5})
    result = STAGE.run(F.make_frame(rows), config, Context())
    assert result.sections["labels"]["after"] == {"a": 4, "b": 4}
    details = result.rejected.group_by(F.DETAIL).len().sort(F.DETAIL).rows()
    assert details == [
        ("class 'a': target share 0.5 of 8 rows", 6),
        ("class 'c': label has no target share", 3),
    ]


def test_seeded_and_independent_of_row_order() -> None:
    rows = [row(i, "a", cluster="c" if i <= 3 else None) for i in range(1, 21)] + [row(21, "b"), row(22, "b")]
    rows += [row(23, "a", "synthetic:openai:gpt-4.1-mini")]
    config = BalanceConfig(mode="downsample")
    first = STAGE.run(F.make_frame(rows), config, Context(seed=7))
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    again = STAGE.run(F.make_frame(shuffled), config, Context(seed=7))
    assert lines(again.kept) == lines(first.kept)
    kept_by_seed = {tuple(lines(STAGE.run(F.make_frame(rows), config, Context(seed=s)).kept)) for s in range(5)}
    assert len(kept_by_seed) > 1


def test_rows_without_labels_are_untouched() -> None:
    result = STAGE.run(F.make_frame([row(1, None), row(2, None)]), BalanceConfig(mode="downsample"), Context())
    assert result.rejected.is_empty()
    assert result.sections["labels"] == {"before": {"(none)": 2}, "after": {"(none)": 2}}


def test_config_needs_the_option_of_its_mode() -> None:
    with pytest.raises(ValidationError, match="needs cap_per_class"):
        BalanceConfig(mode="cap")
    with pytest.raises(ValidationError, match="needs proportions"):
        BalanceConfig(mode="proportions")
    with pytest.raises(ValidationError, match="non-negative"):
        BalanceConfig(mode="proportions", proportions={"a": -1.0, "b": 2.0})


def test_cli_flags() -> None:
    assert STAGE.config_from_cli is not None
    off = {"balance": None, "balance_cap": None, "balance_proportions": None}
    assert STAGE.config_from_cli(off) is None
    config = STAGE.config_from_cli({**off, "balance": "proportions", "balance_proportions": "billing=0.6, tech=0.4"})
    assert config == BalanceConfig(mode="proportions", proportions={"billing": 0.6, "tech": 0.4})
    assert STAGE.config_from_cli({**off, "balance": "cap", "balance_cap": 3}) == BalanceConfig(mode="cap", cap_per_class=3)
    with pytest.raises(ValueError, match="'billing:0.5' is not a label=share pair"):
        parse_proportions("billing:0.5")
    with pytest.raises(ValueError, match="--balance cap needs --balance-cap N"):
        STAGE.config_from_cli({**off, "balance": "cap"})
    with pytest.raises(ValueError, match="needs --balance-proportions"):
        STAGE.config_from_cli({**off, "balance": "proportions"})
