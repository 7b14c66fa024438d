"""The offline preflight: `--dry-run`, each rule, and the gates before anything is uploaded."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from fake_openai import FakeOpenAI
from ftdata.pricing import estimate_cost
from ftdata.store import Store, Version
from ftdata.tokenizer import count_example, get_encoding
from openai_testdata import MODEL, chat_row, preference_row, write_version

from ftdata_openai.connection import Connection, Endpoint
from ftdata_openai.options import Options
from ftdata_openai.preflight import run_preflight


def checks_of(stdout: str) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in orjson.loads(stdout)["preflight"]["checks"]}


def test_dry_run_prints_table_with_tokens_and_cost(invoke, chat_version: Version, fake: FakeOpenAI) -> None:
    encoding = get_encoding("o200k_base")
    train = chat_version.read_split("train")
    billed = sum(count_example(row, encoding).total for row in train)
    trained = sum(count_example(row, encoding).trained for row in train)

    human = invoke("support@latest", "--model", MODEL, "--dry-run")
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith(f"support@{chat_version.version} → {MODEL} (supervised): preflight ok; 24 train, 6 validation;")
    # 24 examples: the default epoch rule raises the epochs to 100 // 24 = 4.
    cost = estimate_cost(MODEL, billed, 24)
    assert cost["epochs"] == 4
    assert f"≈ ${cost['usd']:,.2f} for {billed:,} tokens × 4 epochs (default epoch rule)" in human.stdout
    assert "Preflight: support@" in human.stderr and "Tokens (o200k_base)" in human.stderr
    assert f"{billed:,}" in human.stderr and f"{trained:,}" in human.stderr
    assert "2027-01-06" in human.stderr

    machine = invoke("support@latest", "--model", MODEL, "--dry-run", "--json", "-o", "n_epochs=2")
    document = orjson.loads(machine.stdout)
    assert document["run"] is None and document["preflight"]["ok"] is True
    assert document["preflight"]["splits"]["train"]["billed_tokens"] == billed
    assert document["preflight"]["cost"] == estimate_cost(MODEL, billed, 24, epochs=2)
    assert fake.sent == []  # offline: not one request


def test_too_few_examples_fails_with_exit_3(invoke, store: Store, fake: FakeOpenAI) -> None:
    write_version(store, [chat_row(i) for i in range(9)])
    result = invoke("support@latest", "--model", MODEL, "--yes", "--json")
    assert result.exit_code == 3
    assert checks_of(result.stdout)["examples"] == {
        "name": "examples", "status": "fail", "detail": "9 training examples (minimum 10)"}
    assert "error: preflight failed (examples); nothing was uploaded" in result.stderr
    assert fake.sent == []


def test_train_validation_overlap_names_the_validation_lines(invoke, store: Store) -> None:
    version = write_version(store, [chat_row(i) for i in range(12)], [chat_row(50), chat_row(3), chat_row(7)])
    result = invoke("support@latest", "--model", MODEL, "--dry-run", "--json")
    assert result.exit_code == 3
    path = version.split_path("validation")
    assert checks_of(result.stdout)["train/validation overlap"] == {
        "name": "train/validation overlap", "status": "fail",
        "detail": f"2 validation rows also in train: {path}:2; {path}:3"}


def test_example_over_the_model_limit(invoke, store: Store) -> None:
    long_row = chat_row(0)
    long_row["messages"][1]["content"] = "please help " * 17_000  # ~34,000 tokens; gpt-4.1-nano allows 32,768
    write_version(store, [chat_row(i) for i in range(1, 11)] + [long_row])
    result = invoke("support@latest", "--model", "gpt-4.1-nano-2025-04-14", "--dry-run", "--json")
    assert result.exit_code == 3
    detail = checks_of(result.stdout)["example tokens (train)"]["detail"]
    assert detail.startswith("1 examples over the 32,768-token limit: ")
    assert "train.jsonl:11: " in detail


def test_dpo_on_chat_rows_is_a_format_failure(invoke, chat_version: Version) -> None:
    result = invoke("support@latest", "--model", MODEL, "--method", "dpo", "--dry-run", "--json")
    assert result.exit_code == 3
    detail = checks_of(result.stdout)["format (train)"]["detail"]
    assert detail.startswith("24 of 24 rows are not valid preference rows: ")
    assert "train.jsonl:1: " in detail


def test_preference_rows_select_dpo(invoke, store: Store) -> None:
    write_version(store, [preference_row(i) for i in range(12)])
    result = invoke("support@latest", "--model", MODEL, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert checks_of(result.stdout)["format (train)"]["detail"] == "12 preference rows for --method dpo"
    refused = invoke("support@latest", "--model", "gpt-4o-mini-2024-07-18", "--dry-run", "--json")
    assert refused.exit_code == 3
    assert checks_of(refused.stdout)["model"]["detail"] == "gpt-4o-mini does not support --method dpo (supports: supervised)"


def test_broken_json_line_in_a_split(invoke, store: Store) -> None:
    version = write_version(store, [chat_row(i) for i in range(12)])
    with version.split_path("train").open("ab") as fh:
        fh.write(b'{"messages": [\n')
    result = invoke("support@latest", "--model", MODEL, "--dry-run", "--json")
    detail = checks_of(result.stdout)["format (train)"]["detail"]
    assert detail.startswith("1 of 13 rows are not valid chat rows: ")
    assert "train.jsonl:13: invalid_json: " in detail


def test_unknown_model_fails_on_openai_but_only_warns_elsewhere(invoke, chat_version: Version) -> None:
    on_openai = invoke("support@latest", "--model", "gpt-9-turbo", "--dry-run", "--json")
    assert on_openai.exit_code == 3
    assert checks_of(on_openai.stdout)["model"]["detail"].startswith("unknown model 'gpt-9-turbo'")
    elsewhere = invoke("support@latest", "--model", "gpt-9-turbo", "--dry-run", "--json",
                       "--base-url", "https://llm.example.test/v1")
    assert elsewhere.exit_code == 0, elsewhere.output
    checks = checks_of(elsewhere.stdout)
    assert checks["model"]["status"] == "warn"
    assert "platform cutoff" not in checks  # OpenAI's date does not apply to other providers
    assert orjson.loads(elsewhere.stdout)["preflight"]["cost"]["usd"] is None


def test_platform_cutoff_warning_carries_the_date(chat_version: Version) -> None:
    options = Options(model=MODEL)
    openai = Endpoint("https://api.openai.com/v1")

    def cutoff(today: date) -> tuple[str, str]:
        check = next(c for c in run_preflight(chat_version, options, openai, today).checks if c.name == "platform cutoff")
        return check.status, check.detail

    assert cutoff(date(2026, 6, 1)) == ("ok", "new jobs accepted until 2027-01-06")
    status, detail = cutoff(date(2026, 11, 22))
    assert status == "warn" and "on 2027-01-06 (45 days from 2026-11-22)" in detail
    status, detail = cutoff(date(2027, 2, 1))
    assert status == "warn" and detail.startswith("OpenAI stopped accepting new self-serve fine-tuning jobs on 2027-01-06")


def test_base_model_retirement_warns_then_fails(chat_version: Version) -> None:
    openai = Endpoint("https://api.openai.com/v1")

    def model_check(today: date) -> tuple[str, str]:
        check = next(c for c in run_preflight(chat_version, Options(model="gpt-4.1-nano-2025-04-14"), openai,
                                              today).checks if c.name == "model")
        return check.status, check.detail

    assert model_check(date(2026, 1, 1))[0] == "ok"
    status, detail = model_check(date(2026, 9, 23))
    assert status == "warn" and "gpt-4.1-nano retires on 2026-10-23 (30 days)" in detail
    status, detail = model_check(date(2026, 11, 22))
    assert status == "fail" and detail.startswith("gpt-4.1-nano was retired on 2026-10-23")


def test_without_a_terminal_and_without_yes_it_stops_with_exit_2(invoke, chat_version: Version, fake: FakeOpenAI) -> None:
    result = invoke("support@latest", "--model", MODEL)
    assert result.exit_code == 2
    assert "pass --yes (stdin is not a terminal)" in result.stderr
    assert fake.sent == []


def test_missing_key_is_a_plain_error(invoke, chat_version: Version, connection: Connection, fake: FakeOpenAI) -> None:
    keyless = Connection(http_client=connection.http_client, env={})
    result = invoke("support@latest", "--model", MODEL, "--yes", connection_=keyless)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: no API key: set OPENAI_API_KEY to use the fine-tuning API at https://api.openai.com/v1\n")
    assert fake.sent == []


def test_bad_option_is_a_usage_error(invoke, chat_version: Version) -> None:
    result = invoke("support@latest", "--model", MODEL, "-o", "n_epoch=3", "--dry-run")
    assert result.exit_code == 2
    assert "unknown option 'n_epoch' for --method supervised" in result.stderr


def test_unknown_version_is_a_plain_error(invoke, chat_version: Version) -> None:
    result = invoke("support@0000", "--model", MODEL, "--dry-run")
    assert result.exit_code == 1
    assert "error: no version '0000' of 'support'" in result.stderr
