"""length: reject examples longer than the target model's per-example token limit (`too_long`).

OpenAI truncates or refuses over-long examples; local trainers truncate them silently. Either way the
example does not train as written, so it goes to rejected.jsonl with its count and the limit. Uses the
counts of the `tokens` stage when it ran first, and counts itself otherwise.
"""

from __future__ import annotations

from typing import Any

import click
import polars as pl
from pydantic import Field, field_validator

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.stages.tokens import check_model


class LengthConfig(StageConfig):
    max_tokens: int | None = Field(default=None, ge=1, description="Per-example limit; None: the model's limit")
    model: str | None = Field(default=None, description="Model whose limit applies; None: the run's target model")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | None) -> str | None:
        return check_model(model)


def run(frame: pl.DataFrame, config: LengthConfig, ctx: Context) -> StageResult:
    from ftdata.pricing import model_info

    model = config.model or ctx.target_model
    limit = config.max_tokens or model_info(model).max_example_tokens
    counted, unrenderable = frame, F.empty_rejects()
    if F.TOKENS not in frame.columns:
        from ftdata.stages.tokens import add_token_columns

        counted, unrenderable, _ = add_token_columns(frame, model, None, ctx.workers, STAGE.name, ctx.pool)
    too_long = pl.col(F.TOKENS) > limit
    long_rows = counted.filter(too_long)
    stats = {"limit": limit, "model": model, "too_long": long_rows.height}
    if long_rows.is_empty() and unrenderable.is_empty():
        return StageResult(kept=frame, stats=stats)
    detail = pl.format("{} tokens > limit {} for {}", pl.col(F.TOKENS), pl.lit(limit), pl.lit(model))
    rejected = pl.concat([F.reject(long_rows, STAGE.name, "too_long", long_rows.select(detail).to_series()), unrenderable])
    # Counts made here were for the check only; the frame leaves with the columns it came with.
    return StageResult(kept=counted.filter(~too_long).select(frame.columns), rejected=rejected, stats=stats)


def _config_from_cli(params: dict[str, Any]) -> LengthConfig:
    return LengthConfig(max_tokens=params.get("length_limit"), model=params.get("model"))


STAGE = Stage(
    name="length",
    version="1",
    kind="filter",
    config_cls=LengthConfig,
    run=run,
    order=65,
    description="Reject examples over the model's per-example token limit (too_long)",
    cli_options=[
        click.Option(
            ["--length-limit"],
            type=click.IntRange(min=1),
            default=None,
            help="Per-example token limit (default: the target model's, e.g. 65,536 for gpt-4.1-mini).",
        )
    ],
    config_from_cli=_config_from_cli,
)
