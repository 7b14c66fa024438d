"""Upload → job → outcome against the fake API: what the plugin sends, what it records, how it fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2
import orjson
from fake_openai import FakeOpenAI, error
from ftdata.runs import list_runs
from ftdata.store import Store, Version
from openai_testdata import API_KEY, MODEL, files_mentioning, preference_row, write_version

from ftdata_openai.connection import Connection


def only_run(store: Store) -> dict:
    runs = list_runs(store)
    assert len(runs) == 1, runs
    return runs[0]


def test_full_run_sends_method_metadata_suffix_and_records_the_outcome(
    invoke, chat_version: Version, fake: FakeOpenAI, store: Store, tmp_path: Path, sleeps: list[float]
) -> None:
    result = invoke("support@latest", "--model", MODEL, "--yes", "--wait", "-o", "n_epochs=3", "--seed", "7")
    assert result.exit_code == 0, result.output
    record = only_run(store)
    model = f"ft:{MODEL}:org-fake:support-3f2a9c1b:AbC123"
    assert result.stdout == (f"run {record['run_id']}; job ftjob-0003; status succeeded; model {model}; "
                             "trained tokens 4,321\n")

    uploads = fake.calls("POST", "/files")
    assert [u.form["file.filename"] for u in uploads] == [
        b"support-3f2a9c1b7e5d-train.jsonl", b"support-3f2a9c1b7e5d-validation.jsonl"]
    assert {u.form["purpose"] for u in uploads} == {b"fine-tune"}
    assert uploads[0].form["file"] == chat_version.split_path("train").read_bytes()  # the exact bytes

    [create] = fake.calls("POST", "/fine_tuning/jobs")
    splits = chat_version.splits
    assert create.json == {
        "model": MODEL,
        "training_file": "file-0001",
        "validation_file": "file-0002",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        "suffix": "support-3f2a9c1b",
        "seed": 7,
        "metadata": {
            "ftdata_run_id": record["run_id"],
            "ftdata_dataset": "support",
            "ftdata_dataset_version": chat_version.version,
            "ftdata_manifest_sha256": hashlib.sha256((chat_version.path / "manifest.json").read_bytes()).hexdigest(),
            "ftdata_train_sha256": splits["train"]["sha256"],
            "ftdata_validation_sha256": splits["validation"]["sha256"],
        },
    }

    assert record["trainer"] == "openai" and record["job_id"] == "ftjob-0003"
    assert [s["status"] for s in record["statuses"]] == ["uploading", "validating_files", "queued", "running", "succeeded"]
    assert record["fine_tuned_model"] == model and record["trained_tokens"] == 4321
    [result_file] = record["result_files"]
    assert fake.files[result_file]["filename"] == "step_metrics.csv"
    assert [(c["step"], c["metrics"]["valid_loss"]) for c in record["checkpoints"]] == [(2, 1.25), (4, 0.625), (6, 2.5 / 6)]
    assert record["metrics"]["step"] == 6 and record["metrics"]["total_steps"] == 6
    assert record["hyperparameters_resolved"] == {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
    assert record["files"]["train"] == {"file_id": "file-0001", "sha256": splits["train"]["sha256"],
                                        "bytes": splits["train"]["bytes"], "reused": False}
    assert record["base_url"] == "https://api.openai.com/v1" and record["seed"] == 7
    assert record["options"] == {"model": MODEL, "method": "supervised", "hyperparameters": {"n_epochs": 3},
                                 "suffix": None, "seed": 7}
    assert files_mentioning(tmp_path, API_KEY) == []
    assert API_KEY not in result.output
    assert sleeps and max(sleeps) <= 8.0  # every wait went through the injected sleep


def test_rerun_never_uploads_twice(invoke, chat_version: Version, fake: FakeOpenAI, store: Store) -> None:
    assert invoke("support@latest", "--model", MODEL, "--yes").exit_code == 0
    fake.sent.clear()
    second = invoke("support@latest", "--model", MODEL, "--yes", "--json")
    assert second.exit_code == 0, second.output
    assert fake.calls("POST", "/files") == []
    assert [s.path for s in fake.calls("GET", "/files/.*")] == ["/files/file-0001", "/files/file-0002"]
    run = orjson.loads(second.stdout)["run"]
    assert (run["files"]["train"]["file_id"], run["files"]["train"]["reused"]) == ("file-0001", True)
    [create] = fake.calls("POST", "/fine_tuning/jobs")
    assert (create.json["training_file"], create.json["validation_file"]) == ("file-0001", "file-0002")

    cache = orjson.loads((store.root / "runs" / ".cache" / "openai-files.json").read_bytes())
    assert cache["files"]["https://api.openai.com/v1"][chat_version.splits["train"]["sha256"]]["file_id"] == "file-0001"
    assert len(list_runs(store)) == 2  # the cache is not mistaken for a run record


def test_file_deleted_on_the_server_is_uploaded_again(invoke, chat_version: Version, fake: FakeOpenAI) -> None:
    assert invoke("support@latest", "--model", MODEL, "--yes").exit_code == 0
    del fake.files["file-0001"]
    fake.sent.clear()
    assert invoke("support@latest", "--model", MODEL, "--yes").exit_code == 0
    [upload] = fake.calls("POST", "/files")
    assert upload.form["file.filename"] == b"support-3f2a9c1b7e5d-train.jsonl"


def test_split_changed_after_the_version_was_written_is_refused(
    invoke, chat_version: Version, fake: FakeOpenAI
) -> None:
    path = chat_version.split_path("train")
    path.write_bytes(path.read_bytes().replace(b"project 3?", b"project 4?"))
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 1
    assert "the version was changed after it was written (run `ftdata verify`)" in result.stderr
    assert fake.calls("POST", "/files") == []


def test_large_files_go_through_the_uploads_api_in_parts(
    invoke, chat_version: Version, fake: FakeOpenAI, connection: Connection
) -> None:
    connection.parts_threshold, connection.part_size = 1_000, 4_096
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 0, result.output
    assert fake.calls("POST", "/files") == []
    train_bytes = chat_version.split_path("train").read_bytes()
    created = fake.calls("POST", "/uploads")
    assert created[0].json == {"bytes": len(train_bytes), "filename": "support-3f2a9c1b7e5d-train.jsonl",
                               "mime_type": "text/jsonl", "purpose": "fine-tune"}
    parts = fake.calls("POST", "/uploads/upload-0001/parts")
    assert [len(p.form["data"]) for p in parts] == [4_096, len(train_bytes) - 4_096]
    [complete] = fake.calls("POST", "/uploads/upload-0001/complete")
    assert complete.json["md5"] == hashlib.md5(train_bytes).hexdigest()
    assert len(fake.calls("POST", r"/uploads/[^/]+/parts")) == 3  # validation fits in one part
    [create] = fake.calls("POST", "/fine_tuning/jobs")
    assert fake.files[create.json["training_file"]]["_content"] == train_bytes


def test_rate_limit_is_retried_honouring_retry_after(invoke, chat_version: Version, fake: FakeOpenAI) -> None:
    fake.rate_limited = 2  # the client retries twice (max_retries=2), waiting retry-after: 0.01 s each
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 0, result.output
    attempts = fake.calls("POST", "/files")
    assert [a.headers["x-stainless-retry-count"] for a in attempts] == ["0", "1", "2", "0"]


def test_persistent_rate_limit_stops_with_a_plain_message(
    invoke, chat_version: Version, fake: FakeOpenAI, store: Store
) -> None:
    fake.rate_limited = 100
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: uploading the dataset files: still rate limited (429) after retrying with backoff: Rate limit "
        "reached for requests (code rate_limit_exceeded). Wait a little and run the same command again; files "
        "already uploaded are reused.\n")
    assert "Traceback" not in result.output
    record = only_run(store)
    assert record["status"] == "error" and record["error"]["message"].startswith("uploading the dataset files: still")


def test_upload_rejected_with_400_names_the_line(invoke, chat_version: Version, fake: FakeOpenAI) -> None:
    fake.reject_upload = "Invalid file format. Line 3, message 2: content must be a string"
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 1
    path = chat_version.split_path("train")
    third = path.read_bytes().splitlines()[2].decode()
    assert (f"error: the API rejected the train file: {path}:3: Invalid file format. "
            "Line 3, message 2: content must be a string (code invalid_file_format, param file)\n"
            f"  3 | {third[:160]}…") in result.stderr


def test_processing_error_names_the_line_and_forgets_the_file(
    invoke, chat_version: Version, fake: FakeOpenAI, store: Store
) -> None:
    fake.processing_error = "Example 5: the last message must be from the assistant"
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 1
    path = chat_version.split_path("train")
    assert f"the API rejected the train file file-0001: {path}:5: Example 5: the last message" in result.stderr
    fake.processing_error = None
    fake.sent.clear()
    assert invoke("support@latest", "--model", MODEL, "--yes").exit_code == 0
    assert len(fake.calls("POST", "/files")) == 2  # the rejected file was not reused


def test_failed_job_records_the_error_and_exits_1(invoke, chat_version: Version, fake: FakeOpenAI, store: Store) -> None:
    fake.job_script = ["validating_files", "failed"]
    result = invoke("support@latest", "--model", MODEL, "--yes", "--wait")
    assert result.exit_code == 1
    path = chat_version.split_path("train")
    third = path.read_bytes().splitlines()[2].decode()
    assert result.stderr.endswith(
        "error: job ftjob-0003 failed: invalid_training_file: Line 3: too few assistant messages "
        f"(param training_file)\n  at {path}:3\n  3 | {third[:160]}…\n")
    record = only_run(store)
    assert record["status"] == "failed"
    assert record["error"] == {"code": "invalid_training_file", "message": "Line 3: too few assistant messages",
                               "param": "training_file"}
    assert result.stdout.startswith(f"run {record['run_id']}; job ftjob-0003; status failed")


def test_model_refused_by_the_api(invoke, chat_version: Version, store: Store) -> None:
    result = invoke("support@latest", "--model", "gpt-4o-2024-08-06", "--yes")
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: creating the fine-tuning job for gpt-4o-2024-08-06: the API answered 400: Model gpt-4o-2024-08-06 "
        "is not available for fine-tuning or does not exist. (code model_not_available, param model)\n")
    assert only_run(store)["status"] == "error"


def test_wrong_key_and_forbidden_project(
    invoke, chat_version: Version, connection: Connection, fake: FakeOpenAI, tmp_path: Path
) -> None:
    wrong = Connection(http_client=connection.http_client, env={"OPENAI_API_KEY": "sk-wrong-key-123"})
    result = invoke("support@latest", "--model", MODEL, "--yes", connection_=wrong)
    assert result.exit_code == 1
    assert ("the API at https://api.openai.com/v1 rejected the key (401): Incorrect API key provided: "
            "sk-wr*****ng. (code invalid_api_key). Check OPENAI_API_KEY.") in result.stderr
    assert files_mentioning(tmp_path, "sk-wrong-key-123") == []

    fake.respond_once("POST", "/fine_tuning/jobs", error(403, "You have insufficient permissions for this operation.",
                                                          code="missing_scope"))
    result = invoke("support@latest", "--model", MODEL, "--yes")
    assert result.exit_code == 1
    assert ("not permitted (403): You have insufficient permissions for this operation. (code missing_scope). "
            "The key's organisation or project may lack fine-tuning access.") in result.stderr


def test_azure_mode_sends_api_version_and_api_key_header(chat_version: Version, store: Store, tmp_path: Path,
                                                         sleeps: list[float]) -> None:
    from click.testing import CliRunner

    from ftdata_openai.cli import train_command
    from ftdata_openai.connection import CONTEXT_KEY

    fake = FakeOpenAI(API_KEY, prefix="/openai")
    with httpx2.Client(transport=fake.transport()) as client:
        connection = Connection(http_client=client, sleep=sleeps.append, env={"AZURE_OPENAI_API_KEY": API_KEY})
        result = CliRunner().invoke(
            train_command,
            ["support@latest", "--model", MODEL, "--yes", "--wait", "--json", "--azure",
             "--azure-endpoint", "https://acme.openai.azure.com/", "--api-version", "2025-04-01-preview"],
            obj={"store": store, CONTEXT_KEY: connection},
        )
    assert result.exit_code == 0, result.output
    assert {s.query["api-version"] for s in fake.sent} == {"2025-04-01-preview"}
    assert {s.headers["api-key"] for s in fake.sent} == {API_KEY}
    document = orjson.loads(result.stdout)
    assert "platform cutoff" not in {c["name"] for c in document["preflight"]["checks"]}
    record = document["run"]
    assert record["base_url"] == "https://acme.openai.azure.com/openai"
    assert record["azure"] == {"endpoint": "https://acme.openai.azure.com", "api_version": "2025-04-01-preview"}
    assert record["status"] == "succeeded"
    assert files_mentioning(tmp_path, API_KEY) == []


def test_dpo_job_carries_beta_in_the_dpo_method(invoke, store: Store, fake: FakeOpenAI) -> None:
    write_version(store, [preference_row(i) for i in range(12)], [preference_row(i) for i in range(40, 43)])
    result = invoke("support@latest", "--model", MODEL, "--yes", "--wait", "-o", "beta=0.2", "-o", "n_epochs=auto",
                    "--suffix", "support-dpo")
    assert result.exit_code == 0, result.output
    [create] = fake.calls("POST", "/fine_tuning/jobs")
    assert create.json["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": "auto"}}}
    assert create.json["suffix"] == "support-dpo" and "hyperparameters" not in create.json
    record = only_run(store)
    assert record["fine_tuned_model"] == f"ft:{MODEL}:org-fake:support-dpo:AbC123"
    assert record["options"]["method"] == "dpo"
