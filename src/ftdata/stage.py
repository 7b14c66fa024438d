"""The stage contract.

A stage is a frozen pydantic config (extra="forbid") plus a function
`(frame, config, ctx) -> StageResult`. The pipeline — not the stage — counts, times, shows progress and
enforces `rows_in + generated == len(kept) + len(rejected)`.

Stages are registered through the `register_stages` hook (see `ftdata.hookspecs`) as `Stage` objects.
Each may contribute `curate` CLI flags (`cli_options`) and turn the parsed flags into its config
(`config_from_cli`, returning None when the flags leave the stage off), so `ftdata curate` flags and a
recipe file build the same list of (stage, config).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click
import polars as pl
from pydantic import BaseModel, ConfigDict

from ftdata import frame as F

StageKind = Literal["filter", "transform", "global", "generator", "annotator", "split"]


class StageConfig(BaseModel):
    """Base for every stage config: frozen, unknown keys are an error (typos in recipes fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class StageResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame = field(default_factory=F.empty_rejects)
    # Stage-specific numbers recorded under the stage's manifest entry (must be JSON-serialisable
    # and deterministic: no timings).
    stats: dict[str, Any] = field(default_factory=dict)
    # Top-level manifest sections this stage owns, e.g. {"tokens": {...}, "cost": {...},
    # "labels": {"before": ..., "after": ...}, "synthetic": {...}}.
    sections: dict[str, Any] = field(default_factory=dict)
    generated: int = 0


class Progress:
    """Progress reporting handed to stages; the CLI swaps in a rich-backed one."""

    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class Context:
    seed: int = 0
    store: Path = Path("datasets")
    cache_dir: Path = Path(".ftdata-cache")
    dataset: str = "dataset"
    # Target model for token counts / limits / cost (e.g. "gpt-4.1-mini-2025-04-14").
    target_model: str = "gpt-4.1-mini"
    # Worker processes a stage may use (the machine here has 2 cores).
    workers: int = 2
    progress: Progress = field(default_factory=Progress)
    # Frame of rows the pipeline already accepted before this stage (synth dedups against it).
    extras: dict[str, Any] = field(default_factory=dict)
    # Worker processes shared by the stages of one run (`ftdata.workers`); None: a stage makes its own.
    pool: Executor | None = None

    def rng(self, stage: str) -> random.Random:
        """A seeded RNG per stage: all randomness derives from the one seed."""
        return random.Random(f"{self.seed}:{stage}")


@dataclass
class Stage:
    name: str
    version: str
    kind: StageKind
    config_cls: type[StageConfig]
    run: Callable[[pl.DataFrame, Any, Context], StageResult]
    # Position in a flag-built recipe (lower runs first). Conventional values:
    # normalize 10, validate 20, exact_dedup 30, near_dedup 40, synth 50, tokens 60, length 65,
    # balance 70, split 100.
    order: int = 50
    description: str = ""
    cli_options: list[click.Option] = field(default_factory=list)
    # params: every `curate` parameter by click name. Return None to leave the stage out.
    config_from_cli: Callable[[dict[str, Any]], StageConfig | None] | None = None
    # A row stage also gives its per-record op (`ftdata.rowstage`): config -> RowOp. The pipeline then
    # runs it inside ingest when the stage heads the recipe. Must be a module-level class or function.
    row_op: Callable[[Any], Any] | None = None

    def options_table(self) -> list[dict[str, Any]]:
        """The config's options with types and defaults, for `ftdata stages`."""
        rows = []
        for name, info in self.config_cls.model_fields.items():
            if info.is_required():
                default = "(required)"
            elif info.default_factory is not None:
                try:
                    default = info.get_default(call_default_factory=True)
                except (TypeError, ValueError):  # a factory computed from the other fields
                    default = "(computed)"
            else:
                default = info.default
            rows.append(
                {
                    "name": name,
                    "type": info.annotation.__name__ if isinstance(info.annotation, type) else str(info.annotation).replace("typing.", ""),
                    "default": default if isinstance(default, str | int | float | bool | type(None)) else repr(default),
                    "help": info.description or "",
                }
            )
        return rows
