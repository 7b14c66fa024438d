"""split: assign every row to train / validation / test, seeded, stratified and leak-free.

Rows that share a row id (an exact copy), a near-duplicate cluster or a group key form one unit (the
connected components of that "shares a key" relation), and a unit lands in one split as a whole.
Units are stratified by their majority label: within each label the units are put in a seeded random
order and cut at the target ratios by cumulative row count, starting from a seeded random offset
(systematic sampling), so every split gets its share of each label up to one unit. A split whose ratio
is above 0 but got no row takes the smallest unit of the split with the most units, when there are
enough units to go round.

The manifest section `split_check` is computed from the result: how many ids, clusters and groups
appear in more than one split (0 unless the input broke the rule before this stage).
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np
import polars as pl
from pydantic import Field, model_validator

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult

SPLITS = ("train", "validation", "test")


class SplitConfig(StageConfig):
    train: float = Field(default=0.9, ge=0, le=1, description="Share of rows for train")
    validation: float = Field(default=0.1, ge=0, le=1, description="Share of rows for validation")
    test: float = Field(default=0.0, ge=0, le=1, description="Share of rows for test")
    stratify: bool = Field(default=True, description="Keep label shares equal across splits (when rows have labels)")
    group_by_cluster: bool = Field(default=True, description="Keep each near-duplicate cluster in one split")
    group_by: bool = Field(default=True, description="Keep each group (--group-col) in one split")

    @model_validator(mode="after")
    def _ratios_add_up(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, got {total:g}")
        return self

    def ratios(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def _dense(values: pl.Series) -> np.ndarray:
    return values.rank("dense").cast(pl.Int64).to_numpy() - 1


def seeded_keys(ids: pl.Series, seed: int) -> np.ndarray:
    """A seeded pseudo-random uint64 per row id, independent of row order (splitmix64 of the id's hash)."""
    prefix = ids.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64(), strict=False)
    if prefix.null_count():  # ids are sha256 hex by contract; hash anything else so it still gets a key
        import hashlib

        prefix = pl.Series(
            [int(hashlib.sha256(i.encode()).hexdigest()[:16], 16) if p is None else p for i, p in zip(ids, prefix)],
            dtype=pl.UInt64(),
        )
    x = prefix.to_numpy().astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def units(frame: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """Dense unit id per row: rows connected through a shared non-null value of any key column share one."""
    n = frame.height
    shared_cols = [k for k in keys if frame.get_column(k).drop_nulls().is_duplicated().any()]
    if not shared_cols:
        return np.arange(n, dtype=np.int64)
    if len(shared_cols) == 1:
        key = frame.get_column(shared_cols[0])
        # Rows with a null key are their own unit: number them after the keyed ones.
        ids = np.where(key.is_null().to_numpy(), -1, _dense(key.fill_null("")))
        singles = ids == -1
        ids[singles] = ids.max() + 1 + np.arange(int(singles.sum()))
        return _dense(pl.Series(ids))

    # Several key columns share values: union-find over the rows that hold a shared value.
    shared = pl.any_horizontal([pl.col(k).is_not_null() & pl.col(k).is_duplicated() for k in shared_cols])
    involved = frame.with_row_index("__row").filter(shared).select("__row", *shared_cols)
    parent: dict[tuple[int, str], tuple[int, str]] = {}

    def find(node: tuple[int, str]) -> tuple[int, str]:
        root = node
        while parent.get(root, root) != root:
            root = parent[root]
        while node != root:
            parent[node], node = root, parent[node]
        return root

    rows = involved.get_column("__row").to_numpy()
    first_nodes = []
    for values in involved.select(shared_cols).iter_rows():
        nodes = [(i, v) for i, v in enumerate(values) if v is not None]
        root = find(nodes[0])
        for node in nodes[1:]:
            other = find(node)
            if other != root:
                parent[other] = root
        first_nodes.append(nodes[0])
    roots = [find(node) for node in first_nodes]
    root_ids = {root: i for i, root in enumerate(dict.fromkeys(roots))}
    ids = np.full(n, -1, dtype=np.int64)
    ids[rows] = [root_ids[root] for root in roots]
    singles = ids == -1
    ids[singles] = len(root_ids) + np.arange(int(singles.sum()))
    return ids


def unit_strata(labels: pl.Series, unit: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Stratum per unit: 0 for units without a label, else 1 + the rank of the unit's majority label
    (ties: the smallest label)."""
    codes = labels.rank("dense").fill_null(0).cast(pl.Int64).to_numpy()
    stratum = np.zeros(len(size), dtype=np.int64)
    labelled = codes > 0
    single = size[unit] == 1
    stratum[unit[single & labelled]] = codes[single & labelled]
    shared = ~single & labelled
    if shared.any():
        majority = (
            pl.DataFrame({"unit": unit[shared], "code": codes[shared]})
            .group_by("unit", "code")
            .len()
            .sort("unit", "len", "code", descending=[False, True, False])
            .unique("unit", keep="first")
        )
        stratum[majority.get_column("unit").to_numpy()] = majority.get_column("code").to_numpy()
    return stratum


def assign(size: np.ndarray, stratum: np.ndarray, key: np.ndarray, ratios: dict[str, float], seed: int) -> np.ndarray:
    """Split index (into SPLITS) per unit: within each stratum, units in key order cut at the ratios."""
    order = np.lexsort((key, stratum))
    sizes = size[order]
    strata = stratum[order]
    starts = np.flatnonzero(np.r_[True, strata[1:] != strata[:-1]])
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    cum = np.cumsum(sizes)
    before = np.r_[0, cum[starts[1:] - 1]]
    totals = np.r_[cum[starts[1:] - 1], cum[-1]] - before
    middle = (cum - before[run] - sizes / 2) / totals[run]
    offsets = np.random.default_rng(seed).random(int(stratum.max()) + 1)
    position = (middle + offsets[strata]) % 1.0
    bounds = np.cumsum([ratios[name] for name in SPLITS])
    split = np.minimum(np.searchsorted(bounds, position, side="right"), len(SPLITS) - 1)
    # Zero-width splits must stay empty even where floating point puts a position on their edge.
    allowed = [i for i, name in enumerate(SPLITS) if ratios[name] > 0]
    split = np.where(np.isin(split, allowed), split, allowed[-1])
    _fill_empty_splits(split, sizes, allowed)
    result = np.empty(len(split), dtype=np.int64)
    result[order] = split
    return result


def _fill_empty_splits(split: np.ndarray, sizes: np.ndarray, allowed: list[int]) -> None:
    """Give each wanted split with no unit the smallest unit of the split holding the most units."""
    for target in allowed:
        if (split == target).any():
            continue
        counts = np.bincount(split, minlength=len(SPLITS))
        donor = int(np.argmax(counts))
        if counts[donor] < 2:
            continue
        candidates = np.flatnonzero(split == donor)
        split[candidates[np.argmin(sizes[candidates])]] = target


def split_check(frame: pl.DataFrame) -> dict[str, Any]:
    """Leak proof computed from the assigned frame: keys that appear in more than one split."""

    def straddling(column: str) -> int:
        keyed = frame.filter(pl.col(column).is_not_null())
        return keyed.group_by(column).agg(pl.col(F.SPLIT).n_unique().alias("n")).filter(pl.col("n") > 1).height

    counts = dict(frame.group_by(F.SPLIT).len().iter_rows())
    return {
        "cross_split_overlap": {"id": straddling(F.ID), "cluster": straddling(F.CLUSTER), "group": straddling(F.GROUP)},
        "rows": {name: int(counts.get(name, 0)) for name in SPLITS},
    }


def run(frame: pl.DataFrame, config: SplitConfig, ctx: Context) -> StageResult:
    keys = [F.ID] + [F.CLUSTER] * config.group_by_cluster + [F.GROUP] * config.group_by
    unit = units(frame, keys)
    size = np.bincount(unit)
    labels = frame.get_column(F.LABEL)
    stratified = bool(config.stratify and labels.is_not_null().any())
    split_of_unit = unit
    if frame.height:
        seed = ctx.rng("split").getrandbits(64)
        # A unit's key is the smallest key of its rows: random, and independent of the order rows came in.
        unit_key = np.full(len(size), np.iinfo(np.uint64).max, dtype=np.uint64)
        np.minimum.at(unit_key, unit, seeded_keys(frame.get_column(F.ID), seed))
        stratum = unit_strata(labels, unit, size) if stratified else np.zeros(len(size), dtype=np.int64)
        split_of_unit = assign(size, stratum, unit_key, config.ratios(), seed)
    codes = pl.Series(F.SPLIT, split_of_unit[unit], dtype=pl.Int64())
    kept = frame.with_columns(codes.replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String()))
    check = split_check(kept)
    stats = {"units": len(size), "stratified": stratified, **check["rows"]}
    return StageResult(kept=kept, stats=stats, sections={"split_check": check})


def parse_split(text: str) -> dict[str, float]:
    """`"90/10/0"`, `"80/10/10"` or `"0.9/0.1"` → ratios that add up to 1."""
    try:
        parts = [float(p) for p in text.split("/")]
    except ValueError:
        raise ValueError(f"--split {text!r}: expected train/validation[/test], e.g. 90/10/0") from None
    if not 2 <= len(parts) <= 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ValueError(f"--split {text!r}: expected 2 or 3 non-negative numbers, e.g. 90/10/0")
    parts += [0.0] * (3 - len(parts))
    total = sum(parts)
    return dict(zip(SPLITS, (p / total for p in parts), strict=True))


def _config_from_cli(params: dict[str, Any]) -> SplitConfig:
    given = {name: params.get(name) for name in SPLITS if params.get(name) is not None}
    text = params.get("split")
    if text:
        if given:
            raise ValueError("give --split or --train/--validation/--test, not both")
        return SplitConfig(**parse_split(text))
    if not given:
        return SplitConfig()
    test = given.get("test", 0.0)
    if "train" in given and "validation" not in given:
        given["validation"] = 1.0 - given["train"] - test
    validation = given.get("validation", 0.1)
    train = given.get("train", 1.0 - validation - test)
    return SplitConfig(train=round(train, 9), validation=round(validation, 9), test=round(test, 9))


def _ratio_option(name: str) -> click.Option:
    return click.Option([f"--{name}"], type=click.FloatRange(0, 1), default=None, help=f"Share of rows for {name}.")


STAGE = Stage(
    name="split",
    version="1",
    kind="split",
    config_cls=SplitConfig,
    run=run,
    order=100,
    description="Seeded train/validation/test split, stratified by label; clusters and groups never straddle",
    cli_options=[
        click.Option(["--split"], default=None, help="Split ratios train/validation/test, e.g. 90/10/0 (the default)."),
        _ratio_option("train"),
        _ratio_option("validation"),
        _ratio_option("test"),
    ],
    config_from_cli=_config_from_cli,
)
