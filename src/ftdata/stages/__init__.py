"""Built-in stages, registered through the same `register_stages` hook as third-party plugins.

Each module below exposes `STAGE: ftdata.stage.Stage`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ftdata.hookspecs import hookimpl

MODULES = (
    "normalize",
    "validate",
    "exact_dedup",
    "near_dedup",
    "tokens",
    "length",
    "balance",
    "split",
)


@hookimpl
def register_stages(register: Callable[[Any], None]) -> None:
    for name in MODULES:
        module = importlib.import_module(f"ftdata.stages.{name}")
        register(module.STAGE)
