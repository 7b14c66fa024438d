"""Run records: which dataset version made which model.

A trainer writes `<store>/runs/<run-id>.json` (beside the datasets) when it starts and updates it as the
run progresses. Required keys: run_id, trainer, dataset, version, manifest_sha256, split_sha256
{split: sha256}, options, status, created_at, updated_at. Anything else (job id, output dir, metrics,
model) is the trainer's. Secrets never go in a record.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ftdata.store import MANIFEST, RUNS_DIR, Store, StoreError, Version, dump_json, sha256_file

REQUIRED = ("run_id", "trainer", "dataset", "version", "manifest_sha256", "split_sha256", "options", "status")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def runs_dir(store: Store) -> Path:
    return store.root / RUNS_DIR


def new_run(store: Store, trainer: str, version: Version, options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A fresh record linking the run to the exact version (by hashes), not yet written."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{trainer}-{version.dataset}-{version.version[:8]}-{stamp}-{secrets.token_hex(2)}"
    created = now()
    return {
        "run_id": run_id,
        "trainer": trainer,
        "dataset": version.dataset,
        "version": version.version,
        "manifest_sha256": sha256_file(version.path / MANIFEST),
        "split_sha256": {name: entry["sha256"] for name, entry in version.splits.items()},
        "options": options,
        "status": "created",
        "created_at": created,
        "updated_at": created,
        **extra,
    }


def write_run(store: Store, record: dict[str, Any]) -> Path:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"run record lacks {missing}")
    record["updated_at"] = now()
    directory = runs_dir(store)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['run_id']}.json"
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_bytes(dump_json(record))
    os.replace(tmp, path)
    return path


def load_run(store: Store, run_id: str) -> dict[str, Any]:
    directory = runs_dir(store)
    path = directory / f"{run_id}.json"
    if not path.exists():
        matches = sorted(directory.glob(f"{run_id}*.json")) if directory.is_dir() else []
        if len(matches) != 1:
            raise StoreError(f"no run {run_id!r} in {directory}" if not matches else f"run id {run_id!r} is ambiguous")
        path = matches[0]
    return orjson.loads(path.read_bytes())


def list_runs(store: Store, dataset: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
    directory = runs_dir(store)
    if not directory.is_dir():
        return []
    records = [orjson.loads(p.read_bytes()) for p in sorted(directory.glob("*.json"))]
    records = [
        r for r in records
        if (dataset is None or r.get("dataset") == dataset) and (version is None or r.get("version") == version)
    ]
    return sorted(records, key=lambda r: (r.get("created_at", ""), r["run_id"]))
