"""Ingest options, the file-level error, and the `ftdata curate` flags that build the options."""

from __future__ import annotations

from typing import Any, Literal, get_args

import click
from pydantic import BaseModel, ConfigDict, Field

Layout = Literal["auto", "messages", "prompt_completion", "alpaca", "sharegpt", "columns", "preference"]
LAYOUTS: tuple[str, ...] = get_args(Layout)


class IngestError(Exception):
    """A whole input file cannot be read: missing, unreadable, unknown extension, undetectable layout."""


class IngestOptions(BaseModel):
    """How input files map onto canonical rows. Column names apply to every file of a run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: Layout = Field("auto", description="input layout; auto detects it per file from keys/columns")
    user_col: str | None = Field(None, description="column holding the user message")
    assistant_col: str | None = Field(None, description="column holding the assistant reply")
    system_col: str | None = Field(None, description="column holding a per-row system prompt")
    label_col: str | None = Field(None, description="column/key holding the row's category (balancing, stratifying)")
    group_col: str | None = Field(None, description="column/key grouping rows that must stay in one split")


_FLAG_HELP = {
    "user_col": "Column/key with the user message (tabular layouts).",
    "assistant_col": "Column/key with the assistant reply (tabular layouts).",
    "system_col": "Column/key with a per-row system prompt (tabular layouts).",
    "label_col": "Column/key with the row's category, used for balancing and stratified splits.",
    "group_col": "Column/key grouping rows that must never straddle splits.",
}


def ingest_cli_options() -> list[click.Option]:
    """The ingest flags of `ftdata curate` (fresh objects on every call: click options are not shared)."""
    options = [
        click.Option(
            ["--layout"],
            type=click.Choice(LAYOUTS),
            default="auto",
            show_default=True,
            help="Input layout; auto-detected per file from its keys or columns.",
        )
    ]
    for name, help_text in _FLAG_HELP.items():
        flag = "--" + name.replace("_", "-")
        options.append(click.Option([flag, name], metavar="COLUMN", default=None, help=help_text))
    return options


def ingest_options_from_cli(params: dict[str, Any]) -> IngestOptions:
    """Build IngestOptions from parsed `curate` params (other stages' params are ignored)."""
    return IngestOptions(
        layout=params.get("layout") or "auto",
        **{name: params.get(name) for name in _FLAG_HELP},
    )
