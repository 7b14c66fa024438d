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

from ftdata import frame as F
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


def run(frame: pl.DataFrame, config: ValidateConfig, ctx: Context) -> StageResult:
    keep: list[bool] = []
    reasons: list[str] = []
    details: list[str] = []
    counts: Counter[str] = Counter()
    for text, kind in zip(frame.get_column(F.RECORD), frame.get_column(F.KIND), strict=True):
        problems = record_problems(text, kind)
        keep.append(not problems)
        if problems:
            reasons.append(problems[0].reason)
            details.append(format_problems(problems))
            counts.update(p.reason for p in problems)
    stats = {"problems_by_reason": dict(sorted(counts.items()))}
    if not reasons:
        return StageResult(kept=frame, stats=stats)
    mask = pl.Series("keep", keep, dtype=pl.Boolean())
    rejected = F.reject(frame.filter(~mask), STAGE.name, reasons, details)
    return StageResult(kept=frame.filter(mask), rejected=rejected, stats=stats)


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
)
