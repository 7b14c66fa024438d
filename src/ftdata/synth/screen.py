"""The gates generated rows pass before they join the set: validation, dedup, the synthetic share cap.

Validation and dedup reuse the stages' own code, so a synthetic row is held to exactly the rules a real
row was. Dedup runs on the kept real rows followed by the candidates, keeping the human row of any pair,
and only its decisions about candidates are used: the real rows were already judged by the run's own
dedup stages (or deliberately not deduplicated), and the synth stage leaves them as they are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages.validate import format_problems, record_problems

if TYPE_CHECKING:
    from ftdata.stages.near_dedup import NearDedupConfig
    from ftdata.synth.stage import SynthConfig

# Candidates carry this SOURCE while deduplicated with the real rows, so that no real row (whatever its
# source or origin) can be mistaken for one.
CANDIDATE_SOURCE = "\x00ftdata-synth-candidate"
# Questions are short: compare paraphrases from four words up (near_dedup's default skips rows under ten).
PARAPHRASE_MIN_WORDS = 4


def screen_generated(
    real: pl.DataFrame, generated: pl.DataFrame, config: SynthConfig, ctx: Context, paraphrase: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(accepted generated rows, rejected ones with reasons), both in candidate order."""
    from ftdata.synth.stage import STAGE

    rejected: list[pl.DataFrame] = []
    valid, invalid = validate_rows(generated, STAGE.name)
    rejected.append(invalid)
    unique, duplicates = dedup_against_real(real, valid, ctx, paraphrase)
    rejected.append(duplicates)
    accepted, over_share = cap_share(real, unique, config.max_share, STAGE.name)
    rejected.append(over_share)
    return accepted, pl.concat(rejected, how="vertical")


def validate_rows(frame: pl.DataFrame, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    problems = [record_problems(text, "chat") for text in frame.get_column(F.RECORD)]
    ok = pl.Series([not p for p in problems], dtype=pl.Boolean())
    bad = [p for p in problems if p]
    rejected = F.reject(frame.filter(~ok), stage, [p[0].reason for p in bad], [format_problems(p) for p in bad])
    return frame.filter(ok), rejected


def dedup_against_real(
    real: pl.DataFrame, candidates: pl.DataFrame, ctx: Context, paraphrase: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    from ftdata.stages import exact_dedup, near_dedup

    if candidates.is_empty():
        return candidates, F.empty_rejects()
    lines = candidates.get_column(F.LINE)
    tagged = candidates.select(list(F.SCHEMA)).with_columns(pl.lit(CANDIDATE_SOURCE).alias(F.SOURCE))
    combined = pl.concat([real.select(list(F.SCHEMA)), tagged], how="vertical")
    duplicates: list[pl.DataFrame] = []
    for stage, config in (
        (exact_dedup.STAGE, exact_dedup.ExactDedupConfig(keep="human")),
        (near_dedup.STAGE, near_dedup_config(paraphrase)),
    ):
        result = stage.run(combined, config, ctx)
        dropped = result.rejected.filter(pl.col(F.SOURCE) == CANDIDATE_SOURCE)
        duplicates.append(dropped)
        # Only candidates leave; real rows the dedup stage would drop stay in for the next comparison.
        dropped_lines = dropped.get_column(F.LINE)
        combined = combined.filter(~((pl.col(F.SOURCE) == CANDIDATE_SOURCE) & pl.col(F.LINE).is_in(dropped_lines.implode())))
    source = candidates.get_column(F.SOURCE)[0]
    rejected = pl.concat(duplicates, how="vertical").with_columns(pl.lit(source, dtype=pl.String()).alias(F.SOURCE))
    gone = rejected.get_column(F.LINE)
    return candidates.filter(~lines.is_in(gone.implode())), rejected


def near_dedup_config(paraphrase: bool) -> NearDedupConfig:
    """The near_dedup stage's defaults, keeping human rows. A paraphrase keeps its seed's answer by design,
    so it is compared on user turns only (short ones too): a paraphrase is rejected when its wording
    stays too close to another row's question, not because it shares an answer with its seed."""
    from ftdata.stages.near_dedup import NearDedupConfig

    if paraphrase:
        return NearDedupConfig(keep="human", fields="user", min_words=PARAPHRASE_MIN_WORDS)
    return NearDedupConfig(keep="human")


def allowed_synthetic(real: pl.DataFrame, max_share: float) -> int | None:
    """How many more synthetic rows keep synthetic/(all) <= max_share; None = no limit."""
    if max_share >= 1:
        return None
    human = real.filter(pl.col(F.ORIGIN) == "human").height
    synthetic = real.height - human
    return max(0, math.floor(max_share * human / (1 - max_share) + 1e-9) - synthetic)


def cap_share(real: pl.DataFrame, rows: pl.DataFrame, max_share: float, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    allowed = allowed_synthetic(real, max_share)
    if allowed is None or rows.height <= allowed:
        return rows, F.empty_rejects()
    over = rows.slice(allowed)
    detail = f"synthetic rows may be at most {max_share:.0%} of the set: {allowed} fit next to {real.height} rows"
    return rows.slice(0, allowed), F.reject(over, stage, "over_synthetic_share", detail)
