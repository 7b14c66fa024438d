"""What a user chooses for a job: model, method, hyperparameters (`-o key=value`), suffix, seed.

Hyperparameters are validated here, offline, so a typo fails before anything is uploaded. Only the keys a
user set are sent; the API resolves the rest (`auto`), and the job object reports what it chose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ftdata_openai.api_limits import SEED_MAX, SUFFIX_MAX

Method = Literal["supervised", "dpo"]
# The suffix becomes part of the model name `ft:<base>:<org>:<suffix>:<id>`, so no colons or spaces.
SUFFIX_ALLOWED = re.compile(r"^[A-Za-z0-9_-]+$")

Auto = Literal["auto"]


class SupervisedHyperparameters(BaseModel):
    """Ranges of the API's OpenAPI schema: n_epochs 1–50, batch_size 1–256, learning_rate_multiplier > 0,
    beta in (0, 2]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0)] = "auto"


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Auto | Annotated[float, Field(gt=0, le=2)] = "auto"


HYPERPARAMETERS: dict[str, type[SupervisedHyperparameters]] = {
    "supervised": SupervisedHyperparameters,
    "dpo": DpoHyperparameters,
}


class Options(BaseModel):
    """Everything that decides the job, as recorded in the run record's `options`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    method: Method = "supervised"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)  # only what the user set
    suffix: str | None = None
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)

    @field_validator("suffix")
    @classmethod
    def _suffix_shape(cls, value: str | None) -> str | None:
        if value is not None:
            check_suffix(value)
        return value

    def method_body(self) -> dict[str, Any]:
        """The job's `method` argument (the top-level `hyperparameters` argument is deprecated)."""
        return {"type": self.method, self.method: {"hyperparameters": dict(self.hyperparameters)}}

    def n_epochs(self) -> int | None:
        epochs = self.hyperparameters.get("n_epochs", "auto")
        return None if epochs == "auto" else int(epochs)


def check_suffix(suffix: str) -> str:
    if len(suffix) > SUFFIX_MAX:
        raise ValueError(f"suffix {suffix!r} is {len(suffix)} characters; the API allows at most {SUFFIX_MAX}")
    if not SUFFIX_ALLOWED.match(suffix):
        raise ValueError(f"suffix {suffix!r} may only hold letters, digits, '-' and '_'")
    return suffix


def derive_suffix(dataset: str, version: str) -> str:
    """`<dataset>-<version[:8]>`, squeezed into the allowed characters and length."""
    tag = version[:8]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", dataset).strip("-") or "ftdata"
    room = SUFFIX_MAX - len(tag) - 1
    return f"{name[:room].rstrip('-')}-{tag}"


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`-o key=value` strings → dict; a later key overrides an earlier one."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="'-o'")
        parsed[key] = value
    return parsed


def parse_hyperparameters(method: str, pairs: Iterable[str]) -> dict[str, Any]:
    """Validate `-o` pairs for `method`; return only the keys given, with typed values."""
    raw = parse_pairs(pairs)
    model = HYPERPARAMETERS[method]
    try:
        validated = model.model_validate(raw)
    except ValidationError as exc:
        raise click.BadParameter(_explain(exc, raw, method), param_hint="'-o'") from None
    return validated.model_dump(include=set(raw))


def _explain(exc: ValidationError, raw: dict[str, str], method: str) -> str:
    known = ", ".join(HYPERPARAMETERS[method].model_fields)
    problems: dict[str, list[str]] = {}
    for error in exc.errors():
        key = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            hint = " (beta applies to --method dpo)" if key == "beta" else ""
            problems[key] = [f"unknown option {key!r} for --method {method}{hint}; known: {known}"]
            continue
        messages = problems.setdefault(key, [])
        if error["msg"] not in messages:
            messages.append(error["msg"])
    lines = []
    for key, messages in problems.items():
        if key in HYPERPARAMETERS[method].model_fields:
            lines.append(f"{key}={raw[key]}: {' or '.join(messages)}")
        else:
            lines.extend(messages)
    return "; ".join(lines)
