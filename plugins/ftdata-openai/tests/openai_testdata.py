"""Test data for the openai plugin's tests: dataset rows, a hand-written version, the fake key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
from ftdata.store import Store, Version, dump_json

API_KEY = "sk-test-ftdata-9c1f5e2b7a3d4c6e"
VERSION_ID = "3f2a9c1b7e5d4a60b2c8e1f0a9d7c6b5"
MODEL = "gpt-4.1-mini-2025-04-14"


def chat_row(i: int) -> dict[str, Any]:
    return {"messages": [
        {"role": "system", "content": "You are the support assistant of Acme Cloud."},
        {"role": "user", "content": f"How do I rotate the access key of project {i}?"},
        {"role": "assistant", "content": f"Open Settings → Keys for project {i}, choose Rotate, then update "
                                         "your deployments with the new key within 24 hours."},
    ]}


def preference_row(i: int) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": f"Summarise ticket {i} in one line."}]},
        "preferred_output": [{"role": "assistant", "content": f"Ticket {i}: login fails after password reset."}],
        "non_preferred_output": [{"role": "assistant", "content": f"Ticket {i} is about something."}],
    }


def write_version(
    store: Store,
    train: list[dict[str, Any]],
    validation: list[dict[str, Any]] | None = None,
    dataset: str = "support",
    version: str = VERSION_ID,
) -> Version:
    """A version directory as `ftdata curate` writes it: split files plus a manifest listing their hashes."""
    directory = store.root / dataset / version
    directory.mkdir(parents=True)
    splits: dict[str, Any] = {}
    for name, rows in (("train", train), ("validation", validation)):
        if rows is None:
            continue
        data = b"".join(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n" for row in rows)
        (directory / f"{name}.jsonl").write_bytes(data)
        splits[name] = {"path": f"{name}.jsonl", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                        "rows": len(rows)}
    manifest = {"schema_version": 1, "dataset": dataset, "version": version, "created_at": "2026-11-20T10:00:00Z",
                "splits": splits}
    (directory / "manifest.json").write_bytes(dump_json(manifest))
    return Version(store.root, dataset, version)


def files_mentioning(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]
