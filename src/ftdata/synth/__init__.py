"""Synthetic examples and their review, registered through the plugin hooks like any plugin.

- generators `openai` (OpenAI-compatible Chat Completions) and `local` (transformers, bundled SmolLM2);
- stages `synth` (generate, then validate, dedup and cap the share) and `review` (apply a review sheet);
- the command `ftdata review` (export a review sheet).

Heavy imports (torch, transformers, openai) happen only when a generator runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ftdata.hookspecs import hookimpl


@hookimpl
def register_generators(register: Callable[[Any], None]) -> None:
    from ftdata.synth.local_generator import LocalGenerator
    from ftdata.synth.openai_generator import OpenAIGenerator

    register(OpenAIGenerator())
    register(LocalGenerator())


@hookimpl
def register_stages(register: Callable[[Any], None]) -> None:
    from ftdata.synth import review, stage

    register(stage.STAGE)
    register(review.STAGE)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from ftdata.cli import with_store
    from ftdata.synth.review import review_command

    cli.add_command(with_store(review_command))
