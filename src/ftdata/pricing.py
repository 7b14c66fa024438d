"""Target models: tokenizer, per-example token limit, training price, supported methods; and the
Chat Completions prices the synth stage's spend cap uses.

One table, one date each. Prices are OpenAI's published training prices per 1M training tokens
(openai.com/api/pricing, "Fine-tuning" section, read on PRICES_AS_OF); limits are the per-example
token limits of OpenAI's fine-tuning guide. Training is billed per token in the training file times
epochs, so `estimate_cost` takes the billed tokens of one pass over the training split.

Local models (`local:<name>` for a model a local trainer will fine-tune, `hf:<path-or-id>` for one whose
Hugging Face tokenizer we can load) have no price and a limit the user sets (`length` stage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

PRICES_AS_OF = "2026-11-22"
PRICES_SOURCE = "https://openai.com/api/pricing (Fine-tuning: training price per 1M tokens)"
# OpenAI stops accepting new self-serve fine-tuning jobs on this date; existing fine-tuned models keep serving.
OPENAI_NEW_JOBS_CUTOFF = date(2027, 1, 6)

# Default per-example limit for local models when no `--length-limit` is given: a common `max_length`
# for LoRA runs on small GPUs; local trainers truncate rather than reject, so this is a policy choice.
LOCAL_DEFAULT_MAX_TOKENS = 4096

SUPERVISED = "supervised"
DPO = "dpo"
REINFORCEMENT = "reinforcement"


class UnknownModel(ValueError):
    """A target model that is not in the table (and not `local:` / `hf:`)."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    encoding: str
    max_example_tokens: int
    train_usd_per_1m: float | None
    methods: tuple[str, ...]
    fine_tunable: bool
    notes: str = ""
    # Shutdown date of the base model (its fine-tuned models stop serving then too), when announced.
    retires: date | None = None


def _openai(
    family: str,
    encoding: str,
    limit: int,
    price: float | None,
    methods: tuple[str, ...],
    notes: str = "",
    retires: date | None = None,
) -> ModelInfo:
    return ModelInfo(
        name=family,
        family=family,
        encoding=encoding,
        max_example_tokens=limit,
        train_usd_per_1m=price,
        methods=methods,
        fine_tunable=True,
        notes=notes,
        retires=retires,
    )


MODELS: dict[str, ModelInfo] = {
    m.family: m
    for m in (
        _openai("gpt-4.1", "o200k_base", 65_536, 25.00, (SUPERVISED, DPO)),
        _openai("gpt-4.1-mini", "o200k_base", 65_536, 5.00, (SUPERVISED, DPO)),
        # Shutdown dates from OpenAI's deprecations page (legacy snapshots announced 2026-04-22).
        _openai("gpt-4.1-nano", "o200k_base", 32_768, 1.50, (SUPERVISED, DPO), retires=date(2026, 10, 23)),
        _openai(
            "gpt-4o",
            "o200k_base",
            65_536,
            25.00,
            (SUPERVISED,),
            "legacy: OpenAI's DPO guide now lists only the gpt-4.1 family",
        ),
        _openai("gpt-4o-mini", "o200k_base", 65_536, 3.00, (SUPERVISED,)),
        _openai("gpt-3.5-turbo", "cl100k_base", 16_385, 8.00, (SUPERVISED,), "legacy", retires=date(2026, 10, 23)),
        _openai(
            "o4-mini",
            "o200k_base",
            65_536,
            None,
            (REINFORCEMENT,),
            "reinforcement fine-tuning is billed per training hour ($100/h), not per token; "
            "the per-example limit is not published, 65,536 is assumed",
        ),
    )
}

# Snapshots whose limit differs from their family's.
SNAPSHOT_OVERRIDES: dict[str, dict[str, Any]] = {
    "gpt-3.5-turbo-0613": {"max_example_tokens": 4_096},
}

# Trailing snapshot suffixes: "-2025-04-14" (current) and "-0125" (gpt-3.5-turbo era).
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def _family(model: str) -> str:
    """`ft:gpt-4.1-mini-2025-04-14:org::abc` and `gpt-4.1-mini-2025-04-14` → `gpt-4.1-mini`."""
    if model.startswith("ft:"):
        model = model[3:].split(":", 1)[0]
    return _SNAPSHOT.sub("", model)


def model_info(model: str) -> ModelInfo:
    """The table entry for a model name, a dated snapshot, a fine-tuned `ft:` id, or a local model."""
    if model.startswith(("local:", "hf:")):
        return ModelInfo(
            name=model,
            family=model.split(":", 1)[0],
            encoding="o200k_base",
            max_example_tokens=LOCAL_DEFAULT_MAX_TOKENS,
            train_usd_per_1m=None,
            methods=(SUPERVISED, DPO),
            fine_tunable=True,
            notes="local model: no price; set the per-example limit with --length-limit"
            + ("" if model.startswith("hf:") else "; counts use o200k_base unless --tokenizer hf:<path>"),
        )
    family = _family(model)
    info = MODELS.get(family)
    if info is None:
        known = ", ".join(sorted(MODELS))
        raise UnknownModel(
            f"unknown model {model!r} (known: {known}; or local:<name> / hf:<path-or-id> for local models)"
        )
    snapshot = model[3:].split(":", 1)[0] if model.startswith("ft:") else model
    return replace(info, name=model, **SNAPSHOT_OVERRIDES.get(snapshot, {}))


def default_epochs(n_examples: int) -> int:
    """OpenAI's default `n_epochs`: 3, raised for tiny files and lowered for large ones (~25k-100 examples/epoch)."""
    if n_examples <= 0:
        return 0
    if 3 * n_examples < 100:
        return min(25, 100 // n_examples)
    if 3 * n_examples > 25_000:
        return max(1, 25_000 // n_examples)
    return 3


def estimate_cost(
    model: str, billed_tokens_per_epoch: int, n_examples: int, epochs: int | None = None
) -> dict[str, Any]:
    """Training cost: billed tokens × epochs × price. `usd` is None where the model has no per-token price."""
    info = model_info(model)
    n_epochs = default_epochs(n_examples) if epochs is None else epochs
    trained_tokens = billed_tokens_per_epoch * n_epochs
    price = info.train_usd_per_1m
    return {
        "model": model,
        "epochs": n_epochs,
        "epochs_rule": "default" if epochs is None else "given",
        "billed_tokens_per_epoch": billed_tokens_per_epoch,
        "trained_tokens": trained_tokens,
        "usd_per_1m": price,
        "usd": None if price is None else round(trained_tokens * price / 1_000_000, 4),
        "prices_as_of": PRICES_AS_OF,
    }


# Chat Completions list prices, USD per 1M tokens (input, output), standard tier, for the synth stage's spend
# cap (`--synth-max-cost`). Written down from OpenAI's pricing page as it stood on CHAT_PRICES_AS_OF and not
# re-read there since (no access from here); third-party copies of that page from March-April 2026 list the
# same standard-tier figures for the gpt-4.1 family. Cached-input
# discounts are ignored, so a cap errs on the safe side. Models not listed (fine-tuned `ft:` models, other
# providers' models) have no price: only `--synth-max-tokens` caps them.
CHAT_PRICES_AS_OF = "2025-08"
CHAT_PRICES_SOURCE = "https://openai.com/api/pricing (Text tokens, Standard: input / output per 1M tokens)"
CHAT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def chat_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens for a model or a dated snapshot of it; None when unknown."""
    return CHAT_PRICES.get(model) or CHAT_PRICES.get(_SNAPSHOT.sub("", model))


def chat_cost(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """USD of one Chat Completions request; None when the model has no known price."""
    price = chat_price(model)
    if price is None:
        return None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
