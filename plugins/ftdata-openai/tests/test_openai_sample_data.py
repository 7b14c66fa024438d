"""`--dry-run` on a version curated from the repository's sample data, as the README demo runs it."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner
from fake_openai import FakeOpenAI
from ftdata.cli import cli
from ftdata.pricing import estimate_cost
from ftdata.store import Store
from openai_testdata import MODEL

from ftdata_openai.connection import CONTEXT_KEY, Connection

SAMPLE_DATA = Path(__file__).resolve().parents[3] / "sample_data"


def test_dry_run_on_the_curated_sample_data(store: Store, connection: Connection, fake: FakeOpenAI) -> None:
    runner = CliRunner()
    curated = runner.invoke(cli, [
        "curate", str(SAMPLE_DATA / "raw.csv"), "--name", "support", "--label-col", "category",
        "--system-file", str(SAMPLE_DATA / "system_prompt.txt"), "--dedup", "--store", str(store.root),
    ], obj={})
    assert curated.exit_code == 0, curated.output
    version = store.resolve("support@latest")

    human = runner.invoke(cli, ["train", "openai", "support@latest", "--model", MODEL, "--dry-run",
                                "--store", str(store.root)], obj={CONTEXT_KEY: connection})
    assert human.exit_code == 0, human.output
    for heading in ("Preflight: support@", "billed tokens", "trained tokens", "cost: ≈ $"):
        assert heading in human.stderr

    machine = runner.invoke(cli, ["train", "openai", "support@latest", "--model", MODEL, "--dry-run", "--json",
                                  "--store", str(store.root)], obj={CONTEXT_KEY: connection})
    preflight = orjson.loads(machine.stdout)["preflight"]
    splits = version.splits
    # The curate run counted tokens for the same model on its own path; the preflight must agree.
    assert preflight["splits"]["train"]["billed_tokens"] == splits["train"]["tokens"]
    assert preflight["splits"]["train"]["trained_tokens"] == splits["train"]["trained_tokens"]
    assert preflight["splits"]["train"]["rows"] == splits["train"]["rows"]
    assert preflight["cost"] == estimate_cost(MODEL, splits["train"]["tokens"], splits["train"]["rows"])
    assert f"{splits['train']['tokens']:,}" in human.stderr
    assert preflight["ok"] is True and fake.sent == []
