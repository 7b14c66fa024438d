"""Recipes: the ordered list of (stage, config) a curate run applies.

`ftdata curate` flags and a `--recipe recipe.toml` file build the same thing:

    seed = 0
    model = "gpt-4.1-mini-2025-04-14"

    [ingest]
    label_col = "category"

    [[stage]]
    name = "exact_dedup"
    scope = "conversation"

    [[stage]]
    name = "near_dedup"
    threshold = 0.5

normalize and validate are put first and split last when a recipe leaves them out: a version never holds
rows that were not validated, and it always has splits.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftdata import plugins
from ftdata.stage import Stage, StageConfig

REQUIRED_FIRST = ("normalize", "validate")
REQUIRED_LAST = "split"


class RecipeError(ValueError):
    """A recipe or option a user wrote is wrong; the message says where."""


@dataclass(frozen=True)
class Step:
    stage: Stage
    config: StageConfig

    def describe(self) -> dict[str, Any]:
        return {"name": self.stage.name, "version": self.stage.version, "config": self.config.model_dump(mode="json")}


def describe_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors())


def make_config(stage: Stage, values: Mapping[str, Any] | StageConfig, where: str = "") -> StageConfig:
    if isinstance(values, StageConfig):
        return values
    try:
        return stage.config_cls(**values)
    except ValidationError as exc:
        raise RecipeError(f"{where or stage.name}: {describe_errors(exc)}") from None


def build_steps(
    steps: Sequence[tuple[str, Mapping[str, Any] | StageConfig]], complete: bool = True
) -> list[Step]:
    """Resolve stage names to registered stages, validate configs, and add the required stages."""
    registry = plugins.stages()
    built: list[Step] = []
    for index, (name, values) in enumerate(steps):
        if name not in registry:
            raise RecipeError(f"step {index + 1}: unknown stage {name!r} (stages: {', '.join(registry)})")
        built.append(Step(registry[name], make_config(registry[name], values, f"stage {name!r}")))
    names = [s.stage.name for s in built]
    if len(set(names)) != len(names):
        raise RecipeError(f"a stage appears twice in the recipe: {names}")
    if not complete:
        return built
    # A missing required stage goes right after the required ones before it: a recipe naming only
    # normalize still validates after normalising.
    position = 0
    for name in REQUIRED_FIRST:
        if name in names:
            position = max(position, next(i for i, s in enumerate(built) if s.stage.name == name) + 1)
        else:
            built.insert(position, Step(registry[name], registry[name].config_cls()))
            position += 1
    if REQUIRED_LAST not in names:
        built.append(Step(registry[REQUIRED_LAST], registry[REQUIRED_LAST].config_cls()))
    elif names[-1] != REQUIRED_LAST:
        raise RecipeError(f"{REQUIRED_LAST!r} must be the last stage (recipe order: {names})")
    return built


def steps_from_cli(params: Mapping[str, Any]) -> list[tuple[str, StageConfig]]:
    """Every registered stage whose flags turn it on, in its conventional order."""
    chosen = []
    for stage in sorted(plugins.stages().values(), key=lambda s: (s.order, s.name)):
        if stage.config_from_cli is None:
            continue
        try:
            config = stage.config_from_cli(dict(params))
        except ValidationError as exc:
            raise RecipeError(f"{stage.name}: {describe_errors(exc)}") from None
        except ValueError as exc:
            raise RecipeError(f"{stage.name}: {exc}") from None
        if config is not None:
            chosen.append((stage.name, config))
    return chosen


@dataclass(frozen=True)
class Recipe:
    steps: list[tuple[str, dict[str, Any]]]
    ingest: dict[str, Any]
    seed: int | None = None
    model: str | None = None
    name: str | None = None


def load_recipe(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    known = {"seed", "model", "name", "ingest", "stage"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown top-level keys {unknown} (known: {sorted(known)})")
    steps = []
    for index, table in enumerate(data.get("stage", [])):
        if "name" not in table:
            raise RecipeError(f"{path}: [[stage]] #{index + 1} has no name")
        values = dict(table)
        steps.append((values.pop("name"), values))
    return Recipe(steps=steps, ingest=dict(data.get("ingest", {})), seed=data.get("seed"),
                  model=data.get("model"), name=data.get("name"))


def apply_overrides(steps: list[Step], overrides: Sequence[str]) -> list[Step]:
    """`-o stage.key=value` on a built recipe (value parsed as a TOML value, else taken as a string).

    All overrides of one stage are applied together, so `-o split.train=0.8 -o split.validation=0.2`
    is validated as a whole.
    """
    by_stage: dict[str, dict[str, Any]] = {}
    for item in overrides:
        target, sep, raw = item.partition("=")
        stage_name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise RecipeError(f"-o {item!r}: expected stage.key=value, e.g. -o near_dedup.threshold=0.6")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        by_stage.setdefault(stage_name, {})[key] = value
    present = {step.stage.name: index for index, step in enumerate(steps)}
    result = list(steps)
    for stage_name, values in by_stage.items():
        if stage_name not in present:
            raise RecipeError(
                f"-o {stage_name}.…: stage {stage_name!r} is not in this run (running: {', '.join(present)}); "
                "turn it on with its flag or add it to the recipe"
            )
        step = result[present[stage_name]]
        merged = {**step.config.model_dump(), **values}
        result[present[stage_name]] = Step(step.stage, make_config(step.stage, merged, f"-o {stage_name}"))
    return result
