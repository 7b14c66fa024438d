"""Offline checks of a dataset version against the model's rules, before anything is uploaded.

Format for the chosen method (supervised: chat rows; dpo: preference rows), at least 10 training
examples, the model's per-example token limit, file size, zero train/validation overlap (by row hash),
token totals and the cost with OpenAI's epoch rule, and dated warnings when the platform's cutoff for new
jobs is near or past.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from ftdata.frame import canonical_json, row_id
from ftdata.pricing import (
    OPENAI_NEW_JOBS_CUTOFF,
    PRICES_AS_OF,
    ModelInfo,
    UnknownModel,
    default_epochs,
    estimate_cost,
    model_info,
)
from ftdata.store import Version
from ftdata.tokenizer import count_example, get_encoding
from ftdata.validation import validate_record

from ftdata_openai.api_limits import MAX_FILE_BYTES, MIN_EXAMPLES
from ftdata_openai.connection import Endpoint
from ftdata_openai.options import Options

CUTOFF_WARNING_DAYS = 90
UPLOADED_SPLITS = ("train", "validation")
KIND_FOR_METHOD = {"supervised": "chat", "dpo": "preference"}
# Encoding for models the table does not know, on compatible APIs whose model list we cannot see.
FALLBACK_ENCODING = "o200k_base"
SHOWN_PER_CHECK = 5


@dataclass
class SplitReport:
    name: str
    path: Path
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    billed_tokens: int = 0
    trained_tokens: int = 0
    max_example_tokens: int = 0
    format_problems: list[str] = field(default_factory=list)  # "path:line: reason: detail"
    too_long: list[str] = field(default_factory=list)  # "path:line: N tokens"
    row_hashes: dict[str, int] = field(default_factory=dict)  # row hash → first line

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["format_problems"] = len(self.format_problems)
        data["too_long"] = len(self.too_long)
        del data["row_hashes"]
        return data


@dataclass
class Check:
    name: str
    status: str  # "ok" | "fail" | "warn"
    detail: str


@dataclass
class Preflight:
    ref: str
    model: str
    method: str
    base_url: str
    encoding: str
    max_example_tokens: int | None
    splits: dict[str, SplitReport]
    checks: list[Check]
    cost: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "model": self.model,
            "method": self.method,
            "base_url": self.base_url,
            "encoding": self.encoding,
            "max_example_tokens": self.max_example_tokens,
            "ok": self.ok,
            "splits": {name: split.to_dict() for name, split in self.splits.items()},
            "checks": [asdict(check) for check in self.checks],
            "cost": self.cost,
        }


def detect_method(version: Version) -> str:
    """dpo when the first training row is a preference row, else supervised."""
    with version.split_path("train").open("rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    break
                return "dpo" if isinstance(first, dict) and "input" in first else "supervised"
    return "supervised"


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN_PER_CHECK])
    more = len(items) - SHOWN_PER_CHECK
    return f"{shown}; … {more} more" if more > 0 else shown


def _scan_split(version: Version, name: str, kind: str, encoding: Any, limit: int | None) -> SplitReport:
    entry = version.splits[name]
    path = version.split_path(name)
    report = SplitReport(name=name, path=path, bytes=path.stat().st_size, sha256=entry["sha256"])
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                report.format_problems.append(f"{path}:{line_no}: invalid_json: {exc}")
                continue
            problems = validate_record(record, kind)
            if problems:
                report.format_problems.append(f"{path}:{line_no}: {problems[0].reason}: {problems[0].detail}")
                continue
            report.row_hashes.setdefault(row_id(canonical_json(record)), line_no)
            tokens = count_example(record, encoding)
            report.billed_tokens += tokens.total
            report.trained_tokens += tokens.trained
            report.max_example_tokens = max(report.max_example_tokens, tokens.total)
            if limit is not None and tokens.total > limit:
                report.too_long.append(f"{path}:{line_no}: {tokens.total:,} tokens")
    return report


def _date_checks(endpoint: Endpoint, today: date) -> list[Check]:
    if not endpoint.is_openai:  # Azure and other providers keep their own calendars
        return []
    days = (OPENAI_NEW_JOBS_CUTOFF - today).days
    cutoff = OPENAI_NEW_JOBS_CUTOFF.isoformat()
    if days <= 0:
        detail = (f"OpenAI stopped accepting new self-serve fine-tuning jobs on {cutoff}; "
                  "the API will likely refuse this job")
        return [Check("platform cutoff", "warn", detail)]
    if days <= CUTOFF_WARNING_DAYS:
        detail = (f"OpenAI stops accepting new fine-tuning jobs on {cutoff} ({days} days from "
                  f"{today.isoformat()}); fine-tuned models keep serving until their base model retires")
        return [Check("platform cutoff", "warn", detail)]
    return [Check("platform cutoff", "ok", f"new jobs accepted until {cutoff}")]


# Warn this long before a base model's announced shutdown: a fine-tune made now would serve only until then.
RETIREMENT_WARNING_DAYS = 180


def _model_check(options: Options, endpoint: Endpoint, today: date) -> tuple[ModelInfo | None, Check]:
    try:
        info = model_info(options.model)
    except UnknownModel as exc:
        if endpoint.is_openai:
            return None, Check("model", "fail", str(exc))
        detail = (f"{options.model!r} is not in ftdata's model table: counting with {FALLBACK_ENCODING}, "
                  f"no per-example limit, no price (the API at {endpoint.base_url} decides)")
        return None, Check("model", "warn", detail)
    if not info.fine_tunable or info.family in ("local", "hf"):
        return info, Check("model", "fail", f"{options.model} is not fine-tuned through this API (local models: "
                                            "use a local trainer)")
    if options.method not in info.methods:
        supported = ", ".join(info.methods)
        return info, Check("model", "fail", f"{info.family} does not support --method {options.method} "
                                            f"(supports: {supported})")
    detail = f"{options.model}: {options.method}, at most {info.max_example_tokens:,} tokens per example"
    if info.retires is not None:
        days = (info.retires - today).days
        if days <= 0:
            return info, Check("model", "fail", f"{info.family} was retired on {info.retires.isoformat()}: "
                                                "new jobs fail and its fine-tunes no longer serve")
        if days <= RETIREMENT_WARNING_DAYS:
            return info, Check("model", "warn", f"{detail}; {info.family} retires on {info.retires.isoformat()} "
                                                f"({days} days): a fine-tune of it stops serving then")
    if info.notes:
        return info, Check("model", "warn", f"{detail}; {info.notes}")
    return info, Check("model", "ok", detail)


def _split_checks(split: SplitReport, kind: str, method: str, limit: int | None) -> list[Check]:
    checks = []
    if split.format_problems:
        detail = (f"{len(split.format_problems)} of {split.rows} rows are not valid {kind} rows: "
                  + _listing(split.format_problems))
        checks.append(Check(f"format ({split.name})", "fail", detail))
    else:
        checks.append(Check(f"format ({split.name})", "ok", f"{split.rows} {kind} rows for --method {method}"))
    if split.too_long:
        detail = f"{len(split.too_long)} examples over the {limit:,}-token limit: " + _listing(split.too_long)
        checks.append(Check(f"example tokens ({split.name})", "fail", detail))
    elif limit is not None:
        detail = f"longest {split.max_example_tokens:,} of at most {limit:,}"
        checks.append(Check(f"example tokens ({split.name})", "ok", detail))
    status = "fail" if split.bytes > MAX_FILE_BYTES else "ok"
    checks.append(Check(f"file size ({split.name})", status, f"{split.bytes:,} bytes (limit {MAX_FILE_BYTES:,})"))
    return checks


def _overlap_check(train: SplitReport, validation: SplitReport) -> Check:
    shared = sorted(validation.row_hashes[h] for h in train.row_hashes.keys() & validation.row_hashes.keys())
    if not shared:
        return Check("train/validation overlap", "ok", "0 rows shared")
    lines = [f"{validation.path}:{line}" for line in shared]
    return Check("train/validation overlap", "fail", f"{len(shared)} validation rows also in train: {_listing(lines)}")


def run_preflight(version: Version, options: Options, endpoint: Endpoint, today: date | None = None) -> Preflight:
    today = today or datetime.now(UTC).date()
    kind = KIND_FOR_METHOD[options.method]
    info, model_check = _model_check(options, endpoint, today)
    checks = [model_check]
    encoding_name = info.encoding if info is not None else FALLBACK_ENCODING
    limit = info.max_example_tokens if info is not None else None
    encoding = get_encoding(encoding_name)

    splits = {
        name: _scan_split(version, name, kind, encoding, limit) for name in UPLOADED_SPLITS if name in version.splits
    }
    for split in splits.values():
        checks.extend(_split_checks(split, kind, options.method, limit))
    train, validation = splits.get("train"), splits.get("validation")
    if train is None:
        checks.append(Check("examples", "fail", f"{version.ref} has no train split"))
    else:
        status = "ok" if train.rows >= MIN_EXAMPLES else "fail"
        checks.append(Check("examples", status, f"{train.rows} training examples (minimum {MIN_EXAMPLES})"))
    if train is not None and validation is not None:
        checks.append(_overlap_check(train, validation))
    checks.extend(_date_checks(endpoint, today))

    cost = None
    if train is not None:
        if info is not None and model_check.status != "fail":
            cost = estimate_cost(options.model, train.billed_tokens, train.rows, options.n_epochs())
        else:
            epochs = options.n_epochs() or default_epochs(train.rows)
            cost = {"epochs": epochs, "billed_tokens_per_epoch": train.billed_tokens,
                    "trained_tokens": train.billed_tokens * epochs, "usd": None, "prices_as_of": PRICES_AS_OF}
    return Preflight(
        ref=version.ref,
        model=options.model,
        method=options.method,
        base_url=endpoint.base_url,
        encoding=encoding_name,
        max_example_tokens=limit,
        splits=splits,
        checks=checks,
        cost=cost,
    )
