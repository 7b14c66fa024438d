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


def assign(unit_table: pl.DataFrame, ratios: dict[str, float], rng_seed: int) -> np.ndarray:
    """Split index (into SPLITS) per unit. unit_table: unit, size, stratum, rep (min row id), sorted by unit."""
    gen = np.random.default_rng(rng_seed)
    # Stratum code 0 holds the units without a label; labels get 1.. in sorted order.
    coded = unit_table.with_columns(pl.col("stratum").rank("dense").fill_null(0).cast(pl.Int64).alias("__stratum"))
    order = coded.sort("__stratum", "rep", "unit")
    order = order.with_columns(pl.Series("__key", gen.permutation(order.height))).sort("__stratum", "__key")
    strata = order.get_column("__stratum").to_numpy()
    offsets = gen.random(int(strata.max()) + 1)
    size = pl.col("size")
    cut = order.with_columns(
        ((size.cum_sum() - size / 2).over("__stratum") / size.sum().over("__stratum")).alias("__mid")
    )
    position = (cut.get_column("__mid").to_numpy() + offsets[strata]) % 1.0
    bounds = np.cumsum([ratios[name] for name in SPLITS])
    split = np.minimum(np.searchsorted(bounds, position, side="right"), len(SPLITS) - 1)
    # Zero-width splits must stay empty even where floating point puts a position on their edge.
    allowed = [i for i, name in enumerate(SPLITS) if ratios[name] > 0]
    split = np.where(np.isin(split, allowed), split, allowed[-1])

    unit_ids = cut.get_column("unit").to_numpy()
    sizes = cut.get_column("size").to_numpy()
    _fill_empty_splits(split, sizes, allowed)
    result = np.empty(len(split), dtype=np.int64)
    result[unit_ids] = split
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
    stratified = config.stratify and frame.get_column(F.LABEL).is_not_null().any()
    rows = frame.select(F.ID, F.LABEL).with_columns(pl.Series("unit", unit))
    unit_table = (
        rows.group_by("unit")
        .agg(
            pl.len().alias("size"),
            pl.col(F.ID).min().alias("rep"),
            # Majority label (ties: the smallest); units without a label form their own stratum.
            pl.col(F.LABEL).drop_nulls().mode().sort().first().alias("stratum")
            if stratified
            else pl.lit(None, dtype=pl.String()).alias("stratum"),
        )
        .sort("unit")
    )
    split_of_unit = assign(unit_table, config.ratios(), ctx.rng("split").getrandbits(64)) if frame.height else unit
    codes = pl.Series(F.SPLIT, split_of_unit[unit], dtype=pl.Int64())
    kept = frame.with_columns(codes.replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String()))
    check = split_check(kept)
    stats = {"units": unit_table.height, "stratified": bool(stratified), **check["rows"]}
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
