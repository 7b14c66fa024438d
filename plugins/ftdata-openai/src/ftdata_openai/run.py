"""A run from start to finish: run record, uploads, job creation, watching, cancelling.

The run record (`<store>/runs/<run-id>.json`, via `ftdata.runs`) is written before the first upload and
after every change, so a crash or a Ctrl-C leaves a record that `ftdata runs watch` can pick up. It holds
the base URL, never the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from ftdata.runs import new_run, write_run
from ftdata.store import Store, StoreError, Version

from ftdata_openai.connection import Connection, Endpoint, connection_from_context, make_client
from ftdata_openai.errors import TrainerError, api_errors
from ftdata_openai.jobs import (
    TERMINAL_STATUSES,
    Poller,
    job_metadata,
    outcome_message,
    record_job,
    record_outcome,
    set_status,
    watch_job,
)
from ftdata_openai.options import Options, derive_suffix
from ftdata_openai.preflight import UPLOADED_SPLITS, Preflight
from ftdata_openai.upload import FileCache, ensure_uploaded, named_line, wait_until_processed

TRAINER = "openai"

Show = Callable[[str], None]
FILE_PARAMS = {"training_file": "train", "validation_file": "validation"}


def quiet(_: str) -> None:
    """The default `show`: library callers get the record, not chatter (and what `--silent` shows)."""


def preflight_summary(preflight: Preflight) -> dict[str, Any]:
    train = preflight.splits.get("train")
    return {
        "encoding": preflight.encoding,
        "train_examples": train.rows if train else 0,
        "validation_examples": preflight.splits["validation"].rows if "validation" in preflight.splits else 0,
        "cost": preflight.cost,
        "warnings": [f"{check.name}: {check.detail}" for check in preflight.checks if check.status == "warn"],
    }


def job_request(version: Version, options: Options, record: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """Arguments of `fine_tuning.jobs.create`: `method` carries the hyperparameters (the top-level
    `hyperparameters` argument is deprecated); `metadata` ties the job to the exact dataset version."""
    metadata = {
        "ftdata_run_id": record["run_id"],
        "ftdata_dataset": version.dataset,
        "ftdata_dataset_version": version.version,
        "ftdata_manifest_sha256": record["manifest_sha256"],
        **{f"ftdata_{split}_sha256": entry["sha256"] for split, entry in files.items()},
    }
    request: dict[str, Any] = {
        "model": options.model,
        "training_file": files["train"]["file_id"],
        "method": options.method_body(),
        "suffix": options.suffix or derive_suffix(version.dataset, version.version),
        "metadata": job_metadata(metadata),
    }
    if "validation" in files:
        request["validation_file"] = files["validation"]["file_id"]
    if options.seed is not None:
        request["seed"] = options.seed
    return request


def start_run(
    store: Store,
    version: Version,
    options: Options,
    endpoint: Endpoint,
    preflight: Preflight,
    connection: Connection,
    show: Show = quiet,
) -> dict[str, Any]:
    """Upload the version's train/validation files (content-addressed) and create the job."""
    client = make_client(endpoint, connection)
    record = new_run(
        store, TRAINER, version, options.model_dump(), model=options.model,
        preflight=preflight_summary(preflight), **endpoint.to_record(),
    )
    set_status(record, "uploading")
    write_run(store, record)
    show(f"run {record['run_id']}")
    cache = FileCache(store)
    try:
        files: dict[str, Any] = {}
        with api_errors("uploading the dataset files", endpoint.base_url, endpoint.key_variable):
            for split in UPLOADED_SPLITS:
                if split not in version.splits:
                    continue
                path = version.split_path(split)
                uploaded = ensure_uploaded(
                    client, cache, endpoint.base_url, split, path, version.splits[split]["sha256"],
                    filename=f"{version.dataset}-{version.version[:12]}-{split}.jsonl",
                    parts_threshold=connection.parts_threshold, part_size=connection.part_size, log=show,
                )
                files[split] = uploaded.to_record()
                record["files"] = files
                write_run(store, record)
                if not uploaded.processed:
                    wait_until_processed(
                        client, cache, endpoint.base_url, uploaded, path, connection.sleep, connection.file_wait_max_s
                    )
        request = job_request(version, options, record, files)
        record["suffix"], record["metadata"] = request["suffix"], request["metadata"]
        with api_errors(f"creating the fine-tuning job for {options.model}", endpoint.base_url, endpoint.key_variable):
            job = client.fine_tuning.jobs.create(**request)
    except click.ClickException as exc:
        record["error"] = {"message": exc.message}
        set_status(record, "error")
        write_run(store, record)
        raise
    record["seed"] = job.seed
    record_job(record, job)
    write_run(store, record)
    show(f"job {job.id}: {job.status}")
    return record


def _client_for(record: dict[str, Any], connection: Connection) -> tuple[Any, Endpoint]:
    if not record.get("job_id"):
        raise TrainerError(
            f"run {record['run_id']} has no fine-tuning job (status {record.get('status')!r}); start a new run"
        )
    endpoint = Endpoint.from_record(record)
    return make_client(endpoint, connection), endpoint


def watch_run(
    store: Store,
    record: dict[str, Any],
    connection: Connection | None = None,
    show: Show = quiet,
    progress: Show | None = None,
) -> dict[str, Any]:
    """Follow a run's job to its end; raise TrainerError when it ends without a model.

    `show` gets events and status changes, `progress` the step/loss line of each metrics event."""
    connection = connection or connection_from_context()
    client, endpoint = _client_for(record, connection)
    poller = Poller(connection.sleep, connection.poll_initial_s, connection.poll_max_s)
    try:
        with api_errors(f"watching job {record['job_id']}", endpoint.base_url, endpoint.key_variable):
            watch_job(client, record, poller, save=lambda r: write_run(store, r), show=show, progress=progress or show)
    except KeyboardInterrupt:
        write_run(store, record)
        show(f"stopped watching; the job keeps running. Resume with: ftdata runs watch {record['run_id']}")
        raise click.Abort() from None
    message = outcome_message(record)
    if message:
        raise TrainerError(message + _failed_line(store, record))
    return record


def _failed_line(store: Store, record: dict[str, Any]) -> str:
    """Where a file-validation failure points in the version's split file, when the message names a line."""
    error = record.get("error") or {}
    split = FILE_PARAMS.get(error.get("param") or "")
    if split is None or not error.get("message"):
        return ""
    try:
        path = Version(store.root, record["dataset"], record["version"]).split_path(split)
        found = named_line(error["message"], path)
    except (StoreError, OSError):  # the version was deleted since: the API's message stands alone
        return ""
    if found is None:
        return ""
    location, excerpt = found
    return f"\n  at {location}{excerpt}"


def cancel_run(store: Store, record: dict[str, Any], connection: Connection | None = None) -> dict[str, Any]:
    connection = connection or connection_from_context()
    if record.get("status") in TERMINAL_STATUSES:
        raise TrainerError(f"run {record['run_id']} already ended: {record['status']}")
    client, endpoint = _client_for(record, connection)
    with api_errors(f"cancelling job {record['job_id']}", endpoint.base_url, endpoint.key_variable):
        job = client.fine_tuning.jobs.cancel(record["job_id"])
        record_job(record, job)
        if job.status in TERMINAL_STATUSES:
            record_outcome(client, record, job)
    write_run(store, record)
    return record
