"""Registration with ftdata's plugin host (entry point group `ftdata`, name `openai`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftdata.hookspecs import hookimpl
from ftdata.store import Store
from ftdata.trainers import Trainer

from ftdata_openai.cli import train_command


def _watch(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    from ftdata_openai.display import messages, stderr_console
    from ftdata_openai.run import watch_run

    with messages(stderr_console(), silent=False, live=True) as (show, progress):
        return watch_run(store, record, show=show, progress=progress)


def _cancel(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    from ftdata_openai.run import cancel_run

    return cancel_run(store, record)


TRAINER = Trainer(
    name="openai",
    command=train_command,
    description="Fine-tuning jobs on the OpenAI fine-tuning API (OpenAI, Azure OpenAI, compatible base URLs)",
    watch=_watch,
    cancel=_cancel,
)


@hookimpl
def register_trainers(register: Callable[[Any], None]) -> None:
    register(TRAINER)
