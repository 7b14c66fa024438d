"""Through the `ftdata` command itself: `ftdata train openai`, `ftdata runs watch`, `ftdata runs cancel`."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner, Result
from fake_openai import FakeOpenAI
from ftdata.cli import cli
from ftdata.runs import list_runs
from ftdata.store import Store, Version
from openai_testdata import API_KEY, MODEL, files_mentioning

from ftdata_openai.connection import CONTEXT_KEY, Connection


def ftdata(store: Store, connection: Connection, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--store", str(store.root)], obj={CONTEXT_KEY: connection})


def test_train_then_watch_then_list(
    chat_version: Version, store: Store, connection: Connection, fake: FakeOpenAI, tmp_path: Path
) -> None:
    dry = ftdata(store, connection, "train", "openai", "support@latest", "--model", MODEL, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "preflight ok; 24 train, 6 validation" in dry.stdout and fake.sent == []

    started = ftdata(store, connection, "train", "openai", "support@latest", "--model", MODEL, "--yes")
    assert started.exit_code == 0, started.output
    [record] = list_runs(store)
    assert f"follow it with: ftdata runs watch {record['run_id']}" in started.stderr

    watched = ftdata(store, connection, "runs", "watch", record["run_id"])
    assert watched.exit_code == 0, watched.output
    assert watched.stdout == f"{record['run_id']}: succeeded\n"
    assert "step 6/6" in watched.stderr

    listed = ftdata(store, connection, "runs", "--json")
    [run] = orjson.loads(listed.stdout)
    assert run["fine_tuned_model"] == f"ft:{MODEL}:org-fake:support-3f2a9c1b:AbC123"
    assert files_mentioning(tmp_path, API_KEY) == []


def test_cancel_and_a_failed_watch_exit_1_with_a_plain_message(
    chat_version: Version, store: Store, connection: Connection
) -> None:
    assert ftdata(store, connection, "train", "openai", "support@latest", "--model", MODEL, "--yes").exit_code == 0
    [record] = list_runs(store)
    cancelled = ftdata(store, connection, "runs", "cancel", record["run_id"])
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout == f"{record['run_id']}: cancelled\n"
    watched = ftdata(store, connection, "runs", "watch", record["run_id"])
    assert watched.exit_code == 1
    assert watched.stderr.endswith("[info] Fine-tuning job cancelled\nerror: job ftjob-0003 was cancelled; no model was made\n")
