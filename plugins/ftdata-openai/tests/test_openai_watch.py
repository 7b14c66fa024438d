"""Watching and cancelling: events de-duplicated, open statuses, backoff, resume, cancel, Ctrl-C."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import click
import pytest
from fake_openai import FakeOpenAI
from ftdata.runs import list_runs, load_run
from ftdata.store import Store, Version
from ftdata.trainers import Trainer
from openai_testdata import MODEL

from ftdata_openai.connection import CONTEXT_KEY, Connection
from ftdata_openai.errors import TrainerError
from ftdata_openai.run import watch_run


def registered_trainer() -> Trainer:
    """The Trainer the `ftdata` entry point named `openai` registers (as the plugin host would load it)."""
    [entry] = [e for e in entry_points(group="ftdata") if e.name == "openai"]
    found: list[Trainer] = []
    entry.load().register_trainers(register=found.append)
    [trainer] = found
    return trainer


def start_detached(invoke, store: Store) -> dict:
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 0, result.output
    [record] = list_runs(store)
    return record


def in_ftdata_context(connection: Connection, store: Store) -> click.Context:
    """What `ftdata runs watch|cancel` provides: a click context whose object holds the store."""
    return click.Context(click.Command("runs"), obj={"store": store, CONTEXT_KEY: connection})


def test_events_are_shown_once_in_order_across_pages(
    invoke, chat_version: Version, fake: FakeOpenAI, store: Store
) -> None:
    fake.job_script = ["validating_files", "running", "running", "running", "succeeded"]
    fake.steps_per_poll, fake.total_steps = 70, 210  # more new events per poll than one page (50) holds
    result = invoke("support@latest", "--model", MODEL, "--yes", "--wait")
    assert result.exit_code == 0, result.output
    steps = [int(m) for m in re.findall(r"^step (\d+)/210 · train_loss", result.stderr, flags=re.MULTILINE)]
    assert steps == list(range(1, 211))
    for message in ("Job running", "Job succeeded", "The job has successfully completed"):
        assert result.stderr.count(f"[info] {message}\n") == 1
    paged = [s.query for s in fake.calls("GET", r"/fine_tuning/jobs/[^/]+/events") if "after" in s.query]
    assert paged and {q["limit"] for q in paged} == {"50"}
    assert list_runs(store)[0]["metrics"]["step"] == 210


def test_paused_and_unknown_statuses_are_followed_not_fatal(
    invoke, chat_version: Version, fake: FakeOpenAI, store: Store
) -> None:
    fake.job_script = ["queued", "running", "paused", "paused", "frobnicating", "running", "succeeded"]
    result = invoke("support@latest", "--model", MODEL, "--yes", "--wait")
    assert result.exit_code == 0, result.output
    assert "status: paused\n" in result.stderr and "status: frobnicating\n" in result.stderr
    statuses = [s["status"] for s in list_runs(store)[0]["statuses"]]
    assert statuses == ["uploading", "queued", "running", "paused", "frobnicating", "running", "succeeded"]


def test_polling_backs_off_while_nothing_happens(
    invoke, chat_version: Version, fake: FakeOpenAI, sleeps: list[float]
) -> None:
    fake.processing_polls = 0  # no file-processing waits in `sleeps`
    fake.job_script = ["queued"] + ["paused"] * 8 + ["succeeded"]
    assert invoke("support@latest", "--model", MODEL, "--yes", "--wait").exit_code == 0
    # Something new (the status, its event) resets to 1 s; then ×1.5 per quiet poll, capped at 8 s.
    assert sleeps == [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 8.0, 8.0]


def test_resume_after_a_disconnect_through_the_trainer_hook(
    invoke, chat_version: Version, connection: Connection, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record = start_detached(invoke, store)
    assert record["status"] == "validating_files" and "fine_tuned_model" not in record
    trainer = registered_trainer()
    with in_ftdata_context(connection, store):
        final = trainer.watch(store, load_run(store, record["run_id"]))
    assert final["status"] == "succeeded"
    on_disk = load_run(store, record["run_id"])
    assert on_disk["fine_tuned_model"] == f"ft:{MODEL}:org-fake:support-3f2a9c1b:AbC123"
    assert [c["step"] for c in on_disk["checkpoints"]] == [2, 4, 6]
    shown = capsys.readouterr().err
    assert shown.count("[info] Validating training file: file-0001") == 1
    assert "step 6/6" in shown


def test_cancel_through_the_trainer_hook(
    invoke, chat_version: Version, connection: Connection, fake: FakeOpenAI, store: Store
) -> None:
    record = start_detached(invoke, store)
    trainer = registered_trainer()
    with in_ftdata_context(connection, store):
        cancelled = trainer.cancel(store, record)
        assert [s.path for s in fake.calls("POST", r"/fine_tuning/jobs/.*/cancel")] == ["/fine_tuning/jobs/ftjob-0003/cancel"]
        assert cancelled["status"] == "cancelled"
        assert load_run(store, record["run_id"])["statuses"][-1]["status"] == "cancelled"
        with pytest.raises(TrainerError, match=r"already ended: cancelled"):
            trainer.cancel(store, cancelled)
        with pytest.raises(TrainerError, match=r"job ftjob-0003 was cancelled; no model was made"):
            trainer.watch(store, cancelled)


def test_run_that_never_made_a_job_cannot_be_watched(
    invoke, chat_version: Version, fake: FakeOpenAI, connection: Connection, store: Store
) -> None:
    fake.reject_upload = "Invalid file format."
    assert invoke("support@latest", "--model", MODEL, "--yes").exit_code == 1
    [record] = list_runs(store)
    with pytest.raises(TrainerError, match=r"has no fine-tuning job \(status 'error'\); start a new run"):
        watch_run(store, record, connection)


def test_ctrl_c_while_watching_keeps_the_job_and_says_how_to_resume(
    invoke, chat_version: Version, connection: Connection, store: Store
) -> None:
    record = start_detached(invoke, store)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    shown: list[str] = []
    impatient = Connection(http_client=connection.http_client, sleep=interrupted, env=connection.env)
    with pytest.raises(click.Abort):
        watch_run(store, record, impatient, show=shown.append)
    assert shown[-1] == f"stopped watching; the job keeps running. Resume with: ftdata runs watch {record['run_id']}"
    assert load_run(store, record["run_id"])["status"] == "queued"
