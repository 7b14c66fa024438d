"""What a trainer plugin registers through `register_trainers`.

`command` becomes `ftdata train <name>`; it receives the dataset reference as its first argument and the
store through the click context object (`ctx.obj["store"]`, a `ftdata.store.Store`). `watch`/`cancel`
serve `ftdata runs watch|cancel <run-id>` for records this trainer wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ftdata.store import Store


@dataclass
class Trainer:
    name: str
    command: click.Command
    description: str = ""
    watch: Callable[[Store, dict[str, Any]], dict[str, Any]] | None = None
    cancel: Callable[[Store, dict[str, Any]], dict[str, Any]] | None = None
