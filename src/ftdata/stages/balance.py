"""balance: even out the label distribution (`balanced_out`).

Modes: `cap` keeps at most `cap_per_class` rows of each label; `downsample` cuts every label to the
smallest one; `proportions` keeps the largest subset whose label shares match the targets (labels not
listed get share 0). Rows without a label are left alone and reported as "(none)".

Which rows of a class go: synthetic before human, then rows that repeat a near-duplicate cluster
already represented, then a seeded shuffle keyed by row id. The choice does not depend on the order
rows arrived in.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import click
import polars as pl
from pydantic import Field, model_validator

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.stages.split import seeded_keys

NO_LABEL = "(none)"


class BalanceConfig(StageConfig):
    mode: Literal["cap", "proportions", "downsample"] = Field(description="How to balance labels")
    cap_per_class: int | None = Field(default=None, ge=0, description="cap: the most rows kept per label")
    proportions: dict[str, float] | None = Field(default=None, description="proportions: target share per label")

    @model_validator(mode="after")
    def _mode_has_its_option(self) -> BalanceConfig:
        if self.mode == "cap" and self.cap_per_class is None:
            raise ValueError("mode 'cap' needs cap_per_class")
        if self.mode == "proportions":
            if not self.proportions:
                raise ValueError("mode 'proportions' needs proportions, e.g. {a = 0.5, b = 0.5}")
            if any(share < 0 for share in self.proportions.values()) or sum(self.proportions.values()) <= 0:
                raise ValueError("proportions must be non-negative and not all zero")
        return self


def distribution(frame: pl.DataFrame) -> dict[str, int]:
    counts = frame.group_by(pl.col(F.LABEL).fill_null(NO_LABEL)).len()
    return {str(label): int(n) for label, n in sorted(counts.iter_rows())}


def class_targets(counts: dict[str, int], config: BalanceConfig) -> dict[str, tuple[int, str]]:
    """label → (rows to keep, why) for every labelled class."""
    if config.mode == "cap":
        cap = config.cap_per_class or 0
        return {label: (min(n, cap), f"capped at {cap} per class") for label, n in counts.items()}
    if config.mode == "downsample":
        smallest = min(counts.values(), default=0)
        return {label: (smallest, f"downsampled to the smallest class ({smallest})") for label in counts}
    raw = config.proportions or {}
    total = sum(raw.values())
    shares = {label: raw.get(label, 0.0) / total for label in counts}
    # The largest N with share × N ≤ count for every class that has a share; then each class keeps ⌊share × N⌋.
    size = min((counts[label] / share for label, share in shares.items() if share > 0), default=0.0)
    targets = {}
    for label, share in shares.items():
        keep = min(counts[label], math.floor(share * size + 1e-9))
        why = f"target share {share:.4g} of {math.floor(size + 1e-9)} rows" if share > 0 else "label has no target share"
        targets[label] = (keep, why)
    return targets


def removal_order(frame: pl.DataFrame, salt: int) -> pl.DataFrame:
    """Rows ranked within their label: rank 0 is kept first."""
    ranked = frame.with_row_index("__row").with_columns(
        pl.col(F.ORIGIN).str.starts_with("synthetic").fill_null(False).alias("__synthetic"),
        pl.Series("__key", seeded_keys(frame.get_column(F.ID), salt), dtype=pl.UInt64()),
    )
    # Each cluster's first row in (human first, then seeded) order represents it; its other rows repeat it.
    ranked = ranked.sort("__synthetic", "__key", "__row").with_columns(
        (pl.col(F.CLUSTER).is_not_null() & (pl.int_range(pl.len()).over(F.CLUSTER) > 0)).alias("__repeat")
    )
    ordered = ranked.sort("__synthetic", "__repeat", "__key", "__row")
    return ordered.with_columns(pl.int_range(pl.len()).over(F.LABEL).alias("__rank"))


def run(frame: pl.DataFrame, config: BalanceConfig, ctx: Context) -> StageResult:
    before = distribution(frame)
    labelled = frame.filter(pl.col(F.LABEL).is_not_null())
    counts = distribution(labelled)
    if labelled.is_empty():
        ctx.progress.log("balance: no row has a label; nothing to balance")
    targets = class_targets(counts, config)
    ranked = removal_order(frame, ctx.rng("balance").getrandbits(64))
    target_of = pl.col(F.LABEL).replace_strict(
        {label: keep for label, (keep, _) in targets.items()}, default=None, return_dtype=pl.Int64()
    )
    drop = pl.col(F.LABEL).is_not_null() & (pl.col("__rank") >= target_of)
    dropped = ranked.filter(drop).sort("__row")
    kept = ranked.filter(~drop).sort("__row").select(frame.columns)
    details = [f"class {label!r}: {targets[label][1]}" for label in dropped.get_column(F.LABEL).to_list()]
    rejected = F.reject(dropped, STAGE.name, "balanced_out", details)
    after = distribution(kept)
    stats = {
        "mode": config.mode,
        "targets": {label: keep for label, (keep, _) in sorted(targets.items())},
        "balanced_out": dropped.height,
    }
    return StageResult(kept=kept, rejected=rejected, stats=stats, sections={"labels": {"before": before, "after": after}})


def parse_proportions(text: str) -> dict[str, float]:
    """`"a=0.5,b=0.5"` → {"a": 0.5, "b": 0.5}."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, share = item.rpartition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not label.strip() or value < 0:
            raise ValueError(f"--balance-proportions: {item!r} is not a label=share pair (e.g. a=0.5,b=0.5)")
        out[label.strip()] = value
    return out


def _config_from_cli(params: dict[str, Any]) -> BalanceConfig | None:
    mode = params.get("balance")
    if not mode:
        return None
    text = params.get("balance_proportions")
    if mode == "cap" and params.get("balance_cap") is None:
        raise ValueError("--balance cap needs --balance-cap N")
    if mode == "proportions" and not text:
        raise ValueError('--balance proportions needs --balance-proportions, e.g. "billing=0.5,tech=0.5"')
    return BalanceConfig(
        mode=mode,
        cap_per_class=params.get("balance_cap"),
        proportions=parse_proportions(text) if text else None,
    )


STAGE = Stage(
    name="balance",
    version="1",
    kind="global",
    config_cls=BalanceConfig,
    run=run,
    order=70,
    description="Balance rows by label: cap per class, target proportions, or downsample (balanced_out)",
    cli_options=[
        click.Option(
            ["--balance"],
            type=click.Choice(["cap", "proportions", "downsample"]),
            default=None,
            help="Balance rows by label (off unless given).",
        ),
        click.Option(["--balance-cap"], type=click.IntRange(min=0), default=None, help="cap: most rows per label."),
        click.Option(
            ["--balance-proportions"], default=None, help='proportions: target shares, e.g. "billing=0.5,tech=0.5".'
        ),
    ],
    config_from_cli=_config_from_cli,
)
