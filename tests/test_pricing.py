"""The model table and OpenAI's cost rule."""

from __future__ import annotations

from datetime import date

import pytest

from ftdata import pricing
from ftdata.pricing import default_epochs, estimate_cost, model_info


@pytest.mark.parametrize(
    ("model", "family", "limit", "encoding"),
    [
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", 65_536, "o200k_base"),
        ("gpt-4.1-2025-04-14", "gpt-4.1", 65_536, "o200k_base"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", 32_768, "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", 65_536, "o200k_base"),
        ("gpt-4o-2024-08-06", "gpt-4o", 65_536, "o200k_base"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo", 16_385, "cl100k_base"),
        ("gpt-3.5-turbo-0613", "gpt-3.5-turbo", 4_096, "cl100k_base"),
        ("ft:gpt-4.1-nano-2025-04-14:acme::B1x2", "gpt-4.1-nano", 32_768, "o200k_base"),
    ],
)
def test_snapshots_resolve_to_their_family(model: str, family: str, limit: int, encoding: str) -> None:
    info = model_info(model)
    assert (info.name, info.family, info.max_example_tokens, info.encoding) == (model, family, limit, encoding)


def test_prices_and_methods_per_model() -> None:
    prices = {name: info.train_usd_per_1m for name, info in pricing.MODELS.items()}
    assert prices["gpt-4.1"] == 25.0
    assert prices["gpt-4.1-mini"] == 5.0
    assert prices["gpt-4.1-nano"] == 1.5
    assert prices["gpt-4o-mini"] == 3.0
    assert prices["o4-mini"] is None  # reinforcement fine-tuning is billed per hour
    assert "dpo" in model_info("gpt-4.1-mini").methods
    assert model_info("o4-mini-2025-04-16").methods == ("reinforcement",)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(pricing.UnknownModel, match=r"unknown model 'gpt-5-mega'.*gpt-4\.1-mini") as caught:
        model_info("gpt-5-mega")
    assert isinstance(caught.value, ValueError)


def test_local_models_have_no_price_and_a_default_limit() -> None:
    info = model_info("local:smollm2")
    assert info.train_usd_per_1m is None
    assert info.max_example_tokens == pricing.LOCAL_DEFAULT_MAX_TOKENS
    assert model_info("hf:/models/smol").family == "hf"
    assert estimate_cost("local:smollm2", 1000, 10)["usd"] is None


def test_price_table_is_dated_and_knows_the_openai_cutoff() -> None:
    assert date.fromisoformat(pricing.PRICES_AS_OF) <= pricing.OPENAI_NEW_JOBS_CUTOFF
    assert pricing.OPENAI_NEW_JOBS_CUTOFF == date(2027, 1, 6)


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (3, 25), (10, 10), (33, 3), (34, 3), (1000, 3), (8333, 3), (8334, 2), (12_501, 1), (20_000, 1)],
)
def test_default_epochs_follow_openais_rule(n: int, epochs: int) -> None:
    assert default_epochs(n) == epochs


@pytest.mark.parametrize(
    ("n", "epochs", "usd"),
    [
        (10, 10, 0.5),  # 3n < 100: min(25, 100 // 10) = 10 epochs
        (1000, 3, 0.15),  # the plain default
        (20_000, 1, 0.05),  # 3n > 25,000: max(1, 25000 // 20000) = 1 epoch
    ],
)
def test_cost_follows_the_epoch_rule(n: int, epochs: int, usd: float) -> None:
    cost = estimate_cost("gpt-4.1-mini-2025-04-14", 10_000, n)
    assert cost == {
        "model": "gpt-4.1-mini-2025-04-14",
        "epochs": epochs,
        "epochs_rule": "default",
        "billed_tokens_per_epoch": 10_000,
        "trained_tokens": 10_000 * epochs,
        "usd_per_1m": 5.0,
        "usd": usd,
        "prices_as_of": pricing.PRICES_AS_OF,
    }


def test_given_epochs_override_the_rule() -> None:
    cost = estimate_cost("gpt-4.1", 2_000_000, 50_000, epochs=2)
    assert (cost["epochs"], cost["epochs_rule"], cost["trained_tokens"], cost["usd"]) == (2, "given", 4_000_000, 100.0)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4.1-mini", (0.40, 1.60)),
        ("gpt-4.1-mini-2025-04-14", (0.40, 1.60)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
        ("gpt-3.5-turbo-0125", (0.50, 1.50)),
        ("ft:gpt-4.1-mini-2025-04-14:acme::B1x2", None),  # fine-tuned models are priced differently
        ("llama3.1:8b", None),
    ],
)
def test_chat_prices_cover_snapshots_and_leave_unknown_models_unpriced(
    model: str, price: tuple[float, float] | None
) -> None:
    assert pricing.chat_price(model) == price


def test_chat_cost_is_per_million_tokens_and_dated() -> None:
    assert pricing.chat_cost("gpt-4.1", 1_000_000, 500_000) == pytest.approx(6.0)  # $2 in + 0.5 x $8 out
    assert pricing.chat_cost("gpt-4.1-nano", 2000, 0) == pytest.approx(0.0002)
    assert pricing.chat_cost("my-local-model", 1000, 1000) is None
    assert date.fromisoformat(pricing.CHAT_PRICES_AS_OF + "-01") <= date.fromisoformat(pricing.PRICES_AS_OF)
