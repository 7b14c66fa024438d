"""`-o key=value` hyperparameters, the job's `method` body, suffix rules, endpoint resolution."""

from __future__ import annotations

import click
import pytest

from ftdata_openai.api_limits import SUFFIX_MAX
from ftdata_openai.connection import DEFAULT_BASE_URL, Endpoint, resolve_endpoint
from ftdata_openai.options import Options, check_suffix, derive_suffix, parse_hyperparameters


def test_hyperparameters_are_typed_and_only_given_keys_are_kept() -> None:
    parsed = parse_hyperparameters("supervised", ["n_epochs=3", "learning_rate_multiplier=0.5", "batch_size=auto"])
    assert parsed == {"n_epochs": 3, "learning_rate_multiplier": 0.5, "batch_size": "auto"}
    assert parse_hyperparameters("dpo", ["beta=0.1"]) == {"beta": 0.1}


def test_unknown_key_names_the_known_ones() -> None:
    with pytest.raises(click.BadParameter) as info:
        parse_hyperparameters("supervised", ["epochs=3"])
    assert "unknown option 'epochs' for --method supervised" in info.value.message
    assert "known: n_epochs, batch_size, learning_rate_multiplier" in info.value.message


def test_beta_without_dpo_gets_a_hint() -> None:
    with pytest.raises(click.BadParameter) as info:
        parse_hyperparameters("supervised", ["beta=0.2"])
    assert "(beta applies to --method dpo)" in info.value.message


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("n_epochs=2.5", "n_epochs=2.5: Input should be 'auto' or Input should be a valid integer"),
        ("n_epochs=0", "n_epochs=0: Input should be 'auto' or Input should be greater than or equal to 1"),
        ("learning_rate_multiplier=-1", "learning_rate_multiplier=-1: Input should be 'auto' or Input should be greater than 0"),
    ],
)
def test_bad_values_say_what_is_allowed(pair: str, expected: str) -> None:
    with pytest.raises(click.BadParameter) as info:
        parse_hyperparameters("supervised", [pair])
    assert info.value.message.startswith(expected)


def test_pair_without_equals_sign() -> None:
    with pytest.raises(click.BadParameter, match="expected key=value, got 'n_epochs'"):
        parse_hyperparameters("supervised", ["n_epochs"])


def test_method_body_nests_hyperparameters_under_the_method() -> None:
    supervised = Options(model="gpt-4.1-mini", hyperparameters={"n_epochs": 2})
    assert supervised.method_body() == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    dpo = Options(model="gpt-4.1-mini", method="dpo", hyperparameters={"beta": 0.1})
    assert dpo.method_body() == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    assert supervised.n_epochs() == 2 and dpo.n_epochs() is None


def test_derived_suffix_fits_the_api_rules() -> None:
    assert derive_suffix("support", "3f2a9c1b7e5d") == "support-3f2a9c1b"
    long = derive_suffix("customer.support.emails_2026" * 4, "abcdef0123456789")
    assert len(long) == SUFFIX_MAX and long.endswith("-abcdef01") and "." not in long
    assert check_suffix(long) == long


@pytest.mark.parametrize(
    ("suffix", "problem"),
    [("a" * 65, "is 65 characters; the API allows at most 64"), ("my:model", "may only hold letters")],
)
def test_bad_suffix(suffix: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_suffix(suffix)


def test_endpoint_from_flags_and_environment() -> None:
    assert resolve_endpoint(None, False, None, None, env={}) == Endpoint(DEFAULT_BASE_URL)
    assert resolve_endpoint(None, False, None, None, env={"OPENAI_BASE_URL": "https://llm.example/v1/"}).base_url == (
        "https://llm.example/v1"
    )
    azure = resolve_endpoint(None, True, None, None, env={
        "AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com/", "OPENAI_API_VERSION": "2025-04-01-preview"})
    assert azure == Endpoint("https://acme.openai.azure.com/openai", "https://acme.openai.azure.com", "2025-04-01-preview")
    assert azure.key_variable == "AZURE_OPENAI_API_KEY"
    assert Endpoint.from_record(azure.to_record()) == azure


def test_azure_needs_endpoint_and_version() -> None:
    with pytest.raises(click.UsageError, match="--azure needs --azure-endpoint or AZURE_OPENAI_ENDPOINT"):
        resolve_endpoint(None, True, None, "2025-04-01-preview", env={})
    with pytest.raises(click.UsageError, match="--azure needs --api-version or OPENAI_API_VERSION"):
        resolve_endpoint(None, True, "https://acme.openai.azure.com", None, env={})
    with pytest.raises(click.UsageError, match="exclusive"):
        resolve_endpoint("https://x.test/v1", True, "https://acme.openai.azure.com", "v", env={})
