"""tokens: per-row billed and trained token counts for the target model (adds columns).

TOKENS holds the billed tokens of the example (what OpenAI charges per epoch and what the per-example
limit applies to); TRAINED_TOKENS the assistant tokens the loss is computed on. Only rows that reached
this stage are counted, so put it after dedup: on large frames it is the most expensive stage.

With tiktoken nothing is rejected. A Hugging Face chat template can refuse a conversation (many raise on
roles that do not alternate); the trainer would fail on that row too, so it goes with
`chat_template_error` and the template's message.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

import click
import polars as pl
from pydantic import Field, field_validator

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult

TRAINED_TOKENS = F.TRAINED_TOKENS
DEFAULT_MODEL_HELP = "gpt-4.1-mini-2025-04-14"


class TokensConfig(StageConfig):
    model: str | None = Field(
        default=None,
        description="Target model (snapshot, local:<name> or hf:<path>); None: the run's target model",
    )
    tokenizer: str | None = Field(
        default=None,
        description="hf:<path-or-id> (local files) or a tiktoken encoding; None: the model's own",
    )
    workers: int | None = Field(default=None, ge=1, description="Processes for counting; None: the run's workers")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | None) -> str | None:
        return check_model(model)

    @field_validator("tokenizer")
    @classmethod
    def _known_tokenizer(cls, tokenizer: str | None) -> str | None:
        from ftdata.tokenizer import ENCODINGS

        if tokenizer is not None and not tokenizer.startswith("hf:") and tokenizer not in ENCODINGS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}: use hf:<path-or-id> or one of {', '.join(ENCODINGS)}")
        return tokenizer


def check_model(model: str | None) -> str | None:
    """Fail on an unknown model while the config is built, not after the stages before this one ran."""
    from ftdata.pricing import model_info

    if model is not None:
        model_info(model)
    return model


def summary_stats(frame: pl.DataFrame) -> dict[str, Any]:
    """total, trained, mean, p50, p95, max, rows of the count columns (nearest-rank percentiles: integers)."""
    if frame.is_empty():
        return {"total": 0, "trained": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0, "rows": 0}
    tokens = pl.col(F.TOKENS)
    row = frame.select(
        total=tokens.sum(),
        trained=pl.col(TRAINED_TOKENS).sum(),
        mean=tokens.mean().round(2),
        p50=tokens.quantile(0.5, interpolation="nearest"),
        p95=tokens.quantile(0.95, interpolation="nearest"),
        max=tokens.max(),
    ).row(0, named=True)
    return {
        **{key: int(value) for key, value in row.items() if key != "mean"},
        "mean": float(row["mean"]),
        "rows": frame.height,
    }


def add_token_columns(
    frame: pl.DataFrame, model: str, tokenizer: str | None, workers: int, stage: str, pool: Executor | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """(rows with TOKENS and TRAINED_TOKENS, rows the chat template refused, the tokenizer spec used)."""
    from ftdata.tokenizer import count_records, resolve_tokenizer

    spec = resolve_tokenizer(model, tokenizer)
    counts = count_records(spec, frame.get_column(F.RECORD), workers=workers, pool=pool)
    counted = frame.with_columns(
        pl.Series(F.TOKENS, counts.totals, dtype=pl.Int64()),
        pl.Series(TRAINED_TOKENS, counts.trained, dtype=pl.Int64()),
    )
    if not counts.errors:
        return counted, F.empty_rejects(), spec
    failed = pl.Series("failed", [i in counts.errors for i in range(frame.height)])
    reasons = [counts.errors[i] for i in sorted(counts.errors)]
    rejected = F.reject(frame.filter(failed), stage, "chat_template_error", reasons)
    return counted.filter(~failed), rejected, spec


def run(frame: pl.DataFrame, config: TokensConfig, ctx: Context) -> StageResult:
    model = config.model or ctx.target_model
    check_model(model)  # the run's target model was not checked with the config
    workers = config.workers or ctx.workers
    # The run's shared pool has ctx.workers processes; a config asking for another number gets its own.
    pool = ctx.pool if workers == ctx.workers else None
    kept, rejected, spec = add_token_columns(frame, model, config.tokenizer, workers, STAGE.name, pool)
    section = {
        "model": model,
        ("tokenizer" if spec.startswith("hf:") else "encoding"): spec,
        **summary_stats(kept),
    }
    return StageResult(kept=kept, rejected=rejected, stats={"tokenizer": spec}, sections={"tokens": section})


def _config_from_cli(params: dict[str, Any]) -> TokensConfig:
    check_model(params.get("model"))  # a plain "unknown model" message rather than a config error
    return TokensConfig(model=params.get("model"), tokenizer=params.get("tokenizer"))


STAGE = Stage(
    name="tokens",
    version="1",
    kind="annotator",
    config_cls=TokensConfig,
    run=run,
    order=60,
    description="Billed and trained tokens per example for the target model (tiktoken or a HF chat template)",
    cli_options=[
        click.Option(
            ["--model"],
            default=None,
            help=f"Target model: token counts, example limit and cost (default {DEFAULT_MODEL_HELP}; "
            "local:<name> or hf:<path> for local models).",
        ),
        click.Option(
            ["--tokenizer"],
            default=None,
            help="Count with a Hugging Face tokenizer and its chat template: hf:<path-or-id> (local files only).",
        ),
    ],
    config_from_cli=_config_from_cli,
)
