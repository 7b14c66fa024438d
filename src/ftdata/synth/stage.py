"""synth: add synthetic examples made by a generator plugin from the data's own rows.

Runs after dedup (order 50) and before token counting and the length filter, which then treat synthetic
rows like any other. Everything else a real row went through, generated rows go through here: each is
validated (`ftdata.validation`), then exact- and near-deduplicated against the kept real rows and each
other (the dedup stages' own code, keeping the human row of a pair), and finally capped at `max_share` of
the set. A candidate whose reply loops, is cut off, or does not parse is rejected with that reason and
the reply kept in `raw`.

Each synthetic row carries ORIGIN `synthetic:<generator>:<model>`, its seed's LABEL, and in the extra
column `_ftdata_synth_meta` (written to rows.jsonl as `synth_meta`) the method, the prompt template
version and the ids of the seed rows; the training record itself stays a plain example. A paraphrase
shares a CLUSTER with its seed, so splitting never puts the two (which share an answer) on both sides.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Literal

import click
import polars as pl
from pydantic import Field

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.synth.base import GenerationSettings, Generator, SynthError, Usage
from ftdata.synth.cache import GenerationCache
from ftdata.synth.execute import CHUNK_BATCHES, CandidateRunner, Outcome, SpendCap, run_candidates
from ftdata.synth.plan import collect_seeds, plan_candidates
from ftdata.synth.prompts import TEMPLATE_VERSION, example_record
from ftdata.synth.screen import screen_generated

META = "_ftdata_synth_meta"
META_DTYPE = pl.Struct({"method": pl.String(), "template_version": pl.String(), "seed_ids": pl.List(pl.String())})
SOURCE = "synth"


def default_generator(data: dict[str, Any]) -> str:
    """openai when it can run (a key, or a keyless server's base URL), else the offline local model."""
    return "openai" if data.get("base_url") or os.environ.get("OPENAI_API_KEY") else "local"


class SynthConfig(StageConfig):
    n: int = Field(ge=1, description="Synthetic candidates to generate")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (Azure, vLLM, Ollama, ...)")
    generator: str = Field(default_factory=default_generator, description="Generator plugin (openai, local)")
    model: str | None = Field(default=None, description="Model; None: the generator's default")
    method: Literal["self-instruct", "paraphrase"] = Field(default="self-instruct", description="How examples are made")
    k: int = Field(default=2, ge=1, le=20, description="Seed examples shown per self-instruct prompt")
    balance: bool = Field(default=False, description="Spend the budget on labels with the fewest rows first")
    max_share: float = Field(default=0.5, gt=0, le=1, description="Most synthetic rows as a share of the set")
    temperature: float = Field(default=0.8, ge=0, le=2, description="Sampling temperature")
    max_new_tokens: int = Field(default=256, ge=1, description="Token cap per reply (replies hitting it are rejected)")
    batch_size: int = Field(default=64, ge=1, description="Requests per batch (local generator)")
    concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight (API generators)")
    max_cost_usd: float | None = Field(default=None, gt=0, description="Stop generating once this much is spent")
    max_tokens: int | None = Field(default=None, ge=1, description="Stop generating once this many tokens are used")


def resolve_generator(config: SynthConfig) -> Generator:
    from ftdata import plugins

    generator: Generator = plugins.get("generator", config.generator)
    return generator


def settings_for(config: SynthConfig, generator: Generator) -> GenerationSettings:
    return GenerationSettings(
        model=config.model or generator.default_model(),
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        base_url=config.base_url,
        batch_size=config.batch_size,
        concurrency=config.concurrency,
    )


def run(frame: pl.DataFrame, config: SynthConfig, ctx: Context) -> StageResult:
    return synthesize(frame, config, ctx, resolve_generator(config))


def synthesize(frame: pl.DataFrame, config: SynthConfig, ctx: Context, generator: Generator) -> StageResult:
    """The stage with an explicit generator object (the registered one, or one built with a custom client)."""
    settings = settings_for(config, generator)
    generator.check(settings)
    origin = f"synthetic:{generator.name}:{settings.model}"
    seeds = collect_seeds(frame)
    label_counts = Counter(frame.get_column(F.LABEL).to_list())
    candidates = plan_candidates(seeds, label_counts, config.n, config.method, config.k, config.balance,
                                 ctx.rng("synth"))
    if not candidates:
        ctx.progress.log("synth: no human chat row with a user/assistant exchange to learn from; nothing generated")
    runner = CandidateRunner(generator, settings.model, settings, GenerationCache(ctx.cache_dir / "synth"),
                             config.method, seeds)
    outcomes, usage, cap_reached = run_candidates(
        candidates, runner,
        chunk_size=CHUNK_BATCHES * settings.batch_size if generator.batched else 1,
        workers=1 if generator.batched else settings.concurrency,
        cap=SpendCap(config.max_cost_usd, config.max_tokens),
        progress=ctx.progress,
    )
    failed = [o for o in outcomes if o.reason is not None]
    made = [o for o in outcomes if o.reason is None]
    generated_rows = generated_frame(made, origin, config.method)
    kept_synthetic, rejected_synthetic = screen_generated(frame, generated_rows, config, ctx, config.method == "paraphrase")
    rejected = pl.concat([failed_rows(failed, origin), rejected_synthetic], how="vertical").sort(F.LINE)
    real = frame
    if config.method == "paraphrase":
        real, kept_synthetic = tie_paraphrase_seeds(frame, kept_synthetic)
    kept = pl.concat([real, kept_synthetic], how="diagonal_relaxed") if kept_synthetic.height else real

    by_reason = dict(sorted(Counter(rejected.get_column(F.REASON).to_list()).items()))
    section = {
        "generator": generator.name,
        "model": settings.model,
        "origin": origin,
        "method": config.method,
        "template_version": TEMPLATE_VERSION,
        "requested": config.n,
        "generated": len(outcomes),
        "accepted": kept_synthetic.height,
        "rejected_by_reason": by_reason,
        "tokens_in": usage.tokens_in,
        "tokens_out": usage.tokens_out,
        "cost_usd": None if usage.unpriced else round(usage.cost_usd, 6),
        "spend_cap_reached": cap_reached,
    }
    stats = {
        "seed_rows": len(seeds),
        "requests": usage.requests,
        "spend_cap_reached": cap_reached,
        "accepted_by_label": label_counts_of(kept_synthetic),
    }
    ctx.progress.log(progress_line(section, usage, config))
    return StageResult(kept=kept, rejected=rejected, stats=stats, sections={"synthetic": section},
                       generated=len(outcomes))


def generated_frame(made: list[Outcome], origin: str, method: str) -> pl.DataFrame:
    """Canonical rows for the candidates that became examples, in candidate order, with META."""
    rows = []
    metas = []
    for outcome in made:
        candidate = outcome.candidate
        record = example_record(candidate.seeds[0].system, outcome.user or "", outcome.assistant or "")
        rows.append({F.RECORD: F.canonical_json(record), F.SOURCE: SOURCE, F.LINE: candidate.number,
                     F.ORIGIN: origin, F.LABEL: candidate.label})
        metas.append({"method": method, "template_version": TEMPLATE_VERSION,
                      "seed_ids": [s.row_id for s in candidate.seeds]})
    return F.make_frame(rows).with_columns(pl.Series(META, metas, dtype=META_DTYPE))


def failed_rows(failed: list[Outcome], origin: str) -> pl.DataFrame:
    return F.reject_raw(
        [
            {F.SOURCE: SOURCE, F.LINE: o.candidate.number, F.ORIGIN: origin, F.LABEL: o.candidate.label,
             F.KIND: "chat", F.REASON: o.reason, F.DETAIL: o.detail, F.RAW: o.raw}
            for o in failed
        ],
        stage=STAGE.name,
    )


def tie_paraphrase_seeds(real: pl.DataFrame, paraphrases: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give each accepted paraphrase its seed's cluster (making one when the seed has none).

    A paraphrase keeps its seed's answer: in different splits the two would leak the answer from train
    into validation. The split stage keeps a cluster together.
    """
    if paraphrases.is_empty():
        return real, paraphrases
    seed_of = [meta["seed_ids"][0] for meta in paraphrases.get_column(META).to_list()]
    existing = dict(real.filter(pl.col(F.CLUSTER).is_not_null()).select(F.ID, F.CLUSTER).unique(F.ID, keep="first").iter_rows())
    cluster_of_seed = {seed: existing.get(seed) or f"paraphrase-{seed[:16]}" for seed in seed_of}
    real = real.with_columns(
        pl.col(F.CLUSTER).fill_null(pl.col(F.ID).replace_strict(cluster_of_seed, default=None, return_dtype=pl.String()))
    )
    paraphrases = paraphrases.with_columns(pl.Series(F.CLUSTER, [cluster_of_seed[s] for s in seed_of], dtype=pl.String()))
    return real, paraphrases


def label_counts_of(frame: pl.DataFrame) -> dict[str, int]:
    counts = Counter("(none)" if label is None else label for label in frame.get_column(F.LABEL).to_list())
    return dict(sorted(counts.items()))


def progress_line(section: dict[str, Any], usage: Usage, config: SynthConfig) -> str:
    cost = "" if section["cost_usd"] is None else f", ${section['cost_usd']:.4f}"
    cap = ", stopped at the spend cap" if section["spend_cap_reached"] else ""
    return (
        f"synth: {section['generated']} of {config.n} generated, {section['accepted']} accepted; "
        f"{usage.requests} requests ({usage.cached} from cache), "
        f"{usage.tokens_in + usage.tokens_out:,} tokens{cost}{cap}"
    )


def _config_from_cli(params: dict[str, Any]) -> SynthConfig | None:
    n = params.get("synth")
    names = {
        "synth_generator": "generator", "synth_model": "model", "synth_method": "method",
        "synth_base_url": "base_url", "synth_max_cost": "max_cost_usd", "synth_max_tokens": "max_tokens",
        "synth_max_share": "max_share", "synth_batch_size": "batch_size", "synth_concurrency": "concurrency",
    }
    given = {field: params[flag] for flag, field in names.items() if params.get(flag) is not None}
    if params.get("synth_balance"):
        given["balance"] = True
    if not n:
        if given:
            flags = ", ".join(f"--{flag.replace('_', '-')}" for flag in names if params.get(flag) is not None)
            raise ValueError(f"{flags} set without --synth N (how many synthetic examples to make)")
        return None
    config = SynthConfig(n=n, **given)
    # Fail before ingest: an unknown generator names the installed ones, a missing key or package says so.
    generator = resolve_generator(config)
    try:
        generator.check(settings_for(config, generator))
    except SynthError as exc:
        raise ValueError(str(exc)) from None
    return config


STAGE = Stage(
    name="synth",
    version="1",
    kind="generator",
    config_cls=SynthConfig,
    run=run,
    order=50,
    description="Add synthetic examples from a generator (OpenAI-compatible API or a local model)",
    cli_options=[
        click.Option(["--synth"], type=click.IntRange(min=1), default=None, metavar="N",
                     help="Add N synthetic examples made from the data (validated, deduplicated, capped)."),
        click.Option(["--synth-generator"], default=None,
                     help="Generator: openai or local (default: openai when OPENAI_API_KEY or --synth-base-url "
                          "is set, else local with the bundled SmolLM2-135M-Instruct)."),
        click.Option(["--synth-model"], default=None, help="Model for the generator (an HF path or id for local)."),
        click.Option(["--synth-method"], type=click.Choice(["self-instruct", "paraphrase"]), default=None,
                     help="self-instruct (default): new examples in the style of k seeds; paraphrase: reworded "
                          "user turns of existing rows, answers kept."),
        click.Option(["--synth-base-url"], default=None,
                     help="OpenAI-compatible endpoint: Azure OpenAI, vLLM, Ollama, LM Studio..."),
        click.Option(["--synth-max-cost"], type=float, default=None, metavar="USD",
                     help="Stop generating once this many dollars are spent."),
        click.Option(["--synth-max-tokens"], type=int, default=None,
                     help="Stop generating once this many tokens (prompt + reply) are used."),
        click.Option(["--synth-max-share"], type=float, default=None,
                     help="Most synthetic rows as a share of the final set (default 0.5)."),
        click.Option(["--synth-balance"], is_flag=True, default=False,
                     help="Spend the budget on the labels with the fewest rows first."),
        click.Option(["--synth-batch-size"], type=int, default=None, help="Batch size of the local generator (default 64)."),
        click.Option(["--synth-concurrency"], type=int, default=None, help="Requests in flight for API generators (default 4)."),
    ],
    config_from_cli=_config_from_cli,
)
