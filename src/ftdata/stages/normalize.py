"""normalize: Unicode NFC and trimmed whitespace on every text content, and an optional default system prompt.

Runs first (order 10) so later stages — exact dedup above all — see one spelling of each text: "café" typed
with a combining accent and with a precomposed "é" become the same row. It touches message text only
(string content and the `text` of content parts, in every role including tool results); names, ids and
tool-call arguments stay byte-for-byte, since a tool call's JSON is data, not prose. It never rejects:
malformed rows pass through unchanged for `validate` to report.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import polars as pl
from pydantic import Field

from ftdata.rowstage import run_rows
from ftdata.stage import Context, Stage, StageConfig, StageResult

SYSTEM_ROLES = ("system", "developer")


class NormalizeConfig(StageConfig):
    nfc: bool = Field(True, description="Unicode NFC on every text content")
    strip: bool = Field(True, description="trim leading/trailing whitespace of every text content")
    system: str | None = Field(None, description="system prompt added to rows that have none")


def _text_fixer(config: NormalizeConfig) -> Callable[[str], str]:
    nfc, strip = config.nfc, config.strip
    is_normalized, normalize = unicodedata.is_normalized, unicodedata.normalize

    def fix(text: str) -> str:
        # is_normalized is a fast scan; normalize() allocates, so call it only when needed.
        if nfc and not is_normalized("NFC", text):
            text = normalize("NFC", text)
        return text.strip() if strip else text

    return fix


def _fix_messages(messages: Any, fix: Callable[[str], str]) -> bool:
    """Fix the text of every message in place; return whether any changed."""
    if type(messages) is not list:
        return False
    changed = False
    for message in messages:
        if type(message) is not dict:
            continue
        content = message.get("content")
        if type(content) is str:
            fixed = fix(content)
            if fixed != content:
                message["content"] = fixed
                changed = True
        elif type(content) is list:
            for part in content:
                if type(part) is dict and part.get("type") == "text" and type(text := part.get("text")) is str:
                    fixed = fix(text)
                    if fixed != text:
                        part["text"] = fixed
                        changed = True
    return changed


def _has_system(messages: list[Any]) -> bool:
    return any(type(m) is dict and m.get("role") in SYSTEM_ROLES for m in messages)


def normalize_record(record: Any, kind: str | None, config: NormalizeConfig) -> tuple[Any, bool, bool]:
    """Normalise one parsed example in place; return (record, whether it changed, whether a system was added)."""
    fix = _text_fixer(config)
    return _normalize(record, kind, fix, fix(config.system) if config.system is not None else None)


def _normalize(record: Any, kind: str | None, fix: Callable[[str], str], system: str | None) -> tuple[Any, bool, bool]:
    if type(record) is not dict:
        return record, False, False
    if kind == "preference":
        prompt = record.get("input")
        conversation = prompt.get("messages") if type(prompt) is dict else None
        changed = _fix_messages(conversation, fix)
        changed = _fix_messages(record.get("preferred_output"), fix) or changed
        changed = _fix_messages(record.get("non_preferred_output"), fix) or changed
    else:
        conversation = record.get("messages")
        changed = _fix_messages(conversation, fix)
    if system is not None and type(conversation) is list and not _has_system(conversation):
        conversation.insert(0, {"role": "system", "content": system})
        return record, True, True
    return record, changed, False


class NormalizeOp:
    """The stage's row op: fixes each record in place (see `ftdata.rowstage`)."""

    def __init__(self, config: NormalizeConfig) -> None:
        self.fix = _text_fixer(config)
        self.system = self.fix(config.system) if config.system is not None else None
        self.changed = 0
        self.added = 0
        self.last = (False, False)  # what the last apply counted

    def apply(self, record: Any, kind: str) -> bool:
        _, changed, added = _normalize(record, kind, self.fix, self.system)
        self.changed += changed
        self.added += added
        self.last = (changed, added)
        return changed

    def undo(self) -> None:
        self.changed -= self.last[0]
        self.added -= self.last[1]
        self.last = (False, False)

    def unparsable(self, text: str | None) -> None:
        return None  # left as it is, for validate to report

    def stats(self) -> dict[str, Any]:
        return {"rows_changed": self.changed, "system_added": self.added}


def run(frame: pl.DataFrame, config: NormalizeConfig, ctx: Context) -> StageResult:
    kept, rejected, stats = run_rows(frame, STAGE.name, NormalizeOp(config))
    return StageResult(kept=kept, rejected=rejected, stats=stats)


def _config_from_cli(params: dict[str, Any]) -> NormalizeConfig:
    system = params.get("normalize_system")
    system_file = params.get("normalize_system_file")
    if system is not None and system_file is not None:
        raise click.UsageError("give --system or --system-file, not both")
    if system_file is not None:
        system = Path(system_file).read_text(encoding="utf-8-sig")
    return NormalizeConfig(system=system)


STAGE = Stage(
    name="normalize",
    version="1",
    kind="transform",
    config_cls=NormalizeConfig,
    run=run,
    order=10,
    description="Unicode NFC, trimmed whitespace, default system prompt for rows without one",
    cli_options=[
        click.Option(
            ["--system", "normalize_system"],
            metavar="TEXT",
            default=None,
            help="System prompt added to every row that has none.",
        ),
        click.Option(
            ["--system-file", "normalize_system_file"],
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Read the --system prompt from a UTF-8 file.",
        ),
    ],
    config_from_cli=_config_from_cli,
    row_op=NormalizeOp,
)
