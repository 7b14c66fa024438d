"""`-o key=value` training options, validated by one pydantic model (extra keys are an error)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class OptionsError(ValueError):
    """A bad `-o` option; the message names the key and what is wrong with it."""


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # LoRA adapter (peft.LoraConfig)
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (lora_alpha)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch")
    target_modules: str = Field(
        "all-linear", description="'all-linear' or comma-separated module names, e.g. q_proj,v_proj"
    )
    # Optimisation
    epochs: float = Field(3, gt=0)
    lr: float = Field(2e-4, gt=0, description="learning rate")
    batch_size: int = Field(4, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    warmup: float = Field(0, ge=0, description="warmup steps, or a fraction (< 1) of all steps")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    # Sequences
    max_length: int = Field(1024, ge=8, description="tokens per example; longer ones are cut at the end")
    # Evaluation, early stopping, checkpoints
    eval_steps: int | None = Field(
        None, ge=1, description="evaluate (and checkpoint) every N steps; default: every epoch"
    )
    early_stopping_patience: int = Field(
        3, ge=0, description="evaluations without improvement before stopping; 0 = off"
    )
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept (the best one is always kept)")
    logging_steps: int = Field(1, ge=1)
    # Hardware
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU; bf16 on CPU = autocast"
    )
    gradient_checkpointing: bool | None = Field(None, description="default: on for CUDA, off on CPU")
    cpu_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (default: all cores); 1 is faster on a CPU busy with other work"
    )
    # Chat template with {% generation %} markers, for models whose own template lacks them
    chat_template: str | None = Field(None, description="path to a .jinja chat template with {% generation %} markers")

    @model_validator(mode="after")
    def _check_target_modules(self) -> LoraOptions:
        if not self.target_module_list():
            raise ValueError("target_modules is empty")
        return self

    def target_module_list(self) -> str | list[str]:
        """What peft's `LoraConfig(target_modules=...)` takes: "all-linear" or a list of names."""
        if self.target_modules.strip() == "all-linear":
            return "all-linear"
        return [name.strip() for name in self.target_modules.split(",") if name.strip()]


def known_options() -> str:
    return ", ".join(LoraOptions.model_fields)


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`-o key=value` strings → dict; a later key overrides an earlier one."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise OptionsError(f"-o expects key=value, got {pair!r}")
        parsed[key] = value
    return parsed


def parse_options(pairs: Iterable[str], base: dict[str, Any] | None = None) -> LoraOptions:
    """Validate `-o` pairs (on top of `base`, e.g. a resumed run's recorded options)."""
    raw: dict[str, Any] = dict(base or {})
    given = parse_pairs(pairs)
    # An empty value resets an optional setting (e.g. `-o eval_steps=`) to its default.
    raw.update({k: (None if v == "" and k in _OPTIONAL else v) for k, v in given.items()})
    try:
        return LoraOptions.model_validate(raw)
    except ValidationError as exc:
        raise OptionsError(_explain(exc, raw)) from None


_OPTIONAL = {name for name, field in LoraOptions.model_fields.items() if field.default is None}


def _explain(exc: ValidationError, raw: dict[str, Any]) -> str:
    problems: list[str] = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown option {key!r} (known: {known_options()})")
        elif key in raw:
            problems.append(f"-o {key}={raw[key]}: {error['msg']}")
        else:
            problems.append(error["msg"].removeprefix("Value error, "))
    return "; ".join(dict.fromkeys(problems))
