"""What people read: the preflight tables on stderr (rich) and the one-line results on stdout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftdata_openai.preflight import Preflight
from ftdata_openai.run import Show, quiet

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def stderr_console() -> Console:
    # Created per command: rich then writes to whatever sys.stderr is at that moment.
    return Console(stderr=True, highlight=False)


@contextmanager
def messages(console: Console, silent: bool, live: bool = False) -> Iterator[tuple[Show, Show]]:
    """(show, progress) callables: `show` prints a line; `progress` updates one live status line on a
    terminal when `live`, and prints a line otherwise (logs keep every step)."""
    if silent:
        yield quiet, quiet
        return

    def show(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    if not (live and console.is_terminal):
        yield show, show
        return
    with console.status("waiting for the job…") as status:
        yield show, lambda text: status.update(Text(text))


def cost_text(cost: dict[str, Any] | None) -> str:
    if not cost:
        return "no cost estimate (no training split)"
    tokens = f"{cost['billed_tokens_per_epoch']:,} tokens × {cost['epochs']} epochs"
    if cost.get("epochs_rule") == "default":
        tokens += " (default epoch rule)"
    if cost.get("usd") is None:
        return f"{tokens}; no per-token price known for this model"
    return f"≈ ${cost['usd']:,.2f} for {tokens} at ${cost['usd_per_1m']:.2f}/1M (prices as of {cost['prices_as_of']})"


def render_preflight(preflight: Preflight, console: Console) -> None:
    checks = Table(title=f"Preflight: {preflight.ref} → {preflight.model} ({preflight.method})", title_justify="left")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail", overflow="fold")
    for check in preflight.checks:
        checks.add_row(check.name, Text(check.status, style=STATUS_STYLE[check.status]), Text(check.detail))
    console.print(checks)

    splits = Table(title=f"Tokens ({preflight.encoding})", title_justify="left")
    for column in ("split", "rows", "bytes", "billed tokens", "trained tokens", "longest example"):
        splits.add_column(column, justify="left" if column == "split" else "right")
    for split in preflight.splits.values():
        splits.add_row(
            split.name,
            f"{split.rows:,}",
            f"{split.bytes:,}",
            f"{split.billed_tokens:,}",
            f"{split.trained_tokens:,}",
            f"{split.max_example_tokens:,}",
        )
    console.print(splits)
    console.print(Text(f"cost: {cost_text(preflight.cost)}"))


def preflight_line(preflight: Preflight) -> str:
    rows = ", ".join(f"{split.rows} {split.name}" for split in preflight.splits.values())
    verdict = "ok" if preflight.ok else f"FAILED ({', '.join(check.name for check in preflight.failures)})"
    head = f"{preflight.ref} → {preflight.model} ({preflight.method})"
    return f"{head}: preflight {verdict}; {rows}; {cost_text(preflight.cost)}"


def run_line(record: dict[str, Any]) -> str:
    parts = [f"run {record['run_id']}", f"job {record.get('job_id') or '-'}", f"status {record['status']}"]
    if record.get("fine_tuned_model"):
        parts.append(f"model {record['fine_tuned_model']}")
    if record.get("trained_tokens"):
        parts.append(f"trained tokens {record['trained_tokens']:,}")
    return "; ".join(parts)
