"""validate: reject every row that OpenAI's fine-tuning API would refuse (rules in `ftdata.validation`).

A rejected row carries its first problem as REASON and every problem, `reason: detail` joined by "; ",
as DETAIL. Stats count all problems by reason (a row can hold several; the manifest's
`rejected_by_reason` counts rows by their first).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import polars as pl

from ftdata.rowstage import run_rows
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.validation import Problem, validate_record


class ValidateConfig(StageConfig):
    """No options: the rules are OpenAI's, not a matter of taste."""


def record_problems(text: str | None, kind: str | None) -> list[Problem]:
    """Problems of one RECORD text of the given KIND (null KIND means chat)."""
    if text is None:
        return [Problem("missing_record", "row has no record")]
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return [Problem("invalid_json", f"record is not JSON ({exc})")]
    return validate_record(obj, kind or "chat")


def format_problems(problems: list[Problem]) -> str:
    return "; ".join(f"{p.reason}: {p.detail}" for p in problems)


class ValidateOp:
    """The stage's row op (see `ftdata.rowstage`): rejects a record with its first problem, all in DETAIL."""

    def __init__(self, config: ValidateConfig) -> None:
        self.counts: Counter[str] = Counter()
        self.last: list[Problem] = []  # what the last apply counted

    def apply(self, record: Any, kind: str) -> bool | tuple[str, str]:
        return self._verdict(validate_record(record, kind))

    def unparsable(self, text: str | None) -> tuple[str, str] | None:
        return self._verdict(record_problems(text, None))

    def _verdict(self, problems: list[Problem]) -> bool | tuple[str, str]:
        self.last = problems
        if not problems:
            return False
        self.counts.update(p.reason for p in problems)
        return problems[0].reason, format_problems(problems)

    def undo(self) -> None:
        self.counts.subtract(p.reason for p in self.last)
        self.counts = +self.counts  # drop reasons back at zero
        self.last = []

    def stats(self) -> dict[str, Any]:
        return {"problems_by_reason": dict(sorted(self.counts.items()))}


def run(frame: pl.DataFrame, config: ValidateConfig, ctx: Context) -> StageResult:
    kept, rejected, stats = run_rows(frame, STAGE.name, ValidateOp(config))
    return StageResult(kept=kept, rejected=rejected, stats=stats)


def _config_from_cli(params: dict[str, Any]) -> ValidateConfig:
    return ValidateConfig()


STAGE = Stage(
    name="validate",
    version="1",
    kind="filter",
    config_cls=ValidateConfig,
    run=run,
    order=20,
    description="OpenAI fine-tuning format rules (chat and DPO preference rows)",
    config_from_cli=_config_from_cli,
    row_op=ValidateOp,
)
