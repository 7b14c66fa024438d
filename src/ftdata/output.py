"""Terminal output: results on stdout (text or one JSON document), progress and tables on stderr (rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from ftdata.stage import Progress


def stderr_console(silent: bool = False) -> Console:
    return Console(stderr=True, quiet=silent, highlight=False, soft_wrap=False)


def emit_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode())


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[str] = ()) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def fmt_int(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def top_reasons(by_reason: dict[str, int], limit: int = 3) -> str:
    items = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{reason} {n}" for reason, n in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


class RichProgress(Progress):
    """One status line per stage on stderr; quiet when silent or when stderr is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.enabled = not console.quiet and sys.stderr.isatty()
        self._status: Any = None

    def start(self, description: str, total: int | None = None) -> None:
        if not self.enabled:
            return
        label = f"{description} ({total:,} rows)" if total else description
        if self._status is None:
            self._status = self.console.status(label)
            self._status.start()
        else:
            self._status.update(label)

    def log(self, message: str) -> None:
        if not self.console.quiet:
            self.console.print(message)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
