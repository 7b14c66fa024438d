"""pluggy hook specifications. Plugins implement these under the entry-point group `ftdata`.

Each `register_*` hook receives a `register` callback, as in simonw/llm, so one plugin can register
several things. Built-in stages use the same hooks (`ftdata.stages` is registered as a plugin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pluggy

hookspec = pluggy.HookspecMarker("ftdata")
hookimpl = pluggy.HookimplMarker("ftdata")


@hookspec
def register_stages(register: Callable[[Any], None]) -> None:
    """Register `ftdata.stage.Stage` objects."""


@hookspec
def register_generators(register: Callable[[Any], None]) -> None:
    """Register synthetic-data generators (objects with a `name`; see `ftdata.synth`)."""


@hookspec
def register_trainers(register: Callable[[Any], None]) -> None:
    """Register `ftdata.trainers.Trainer` objects; each becomes `ftdata train <name>`."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add extra click commands to the `ftdata` CLI."""
