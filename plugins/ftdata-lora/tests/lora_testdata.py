"""Test data for the LoRA plugin: a small support dataset of one fixed answer style, versions written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from ftdata.store import MANIFEST, dump_json, file_entry

SYSTEM = "You are the support assistant of Harbor Books."
TOPICS = [
    ("reset my password", "use the Forgot password link on the sign-in page"),
    ("track my order", "open Orders in your account and pick the order"),
    ("change my address", "edit it under Account, then Addresses"),
    ("cancel an order", "choose Cancel on the order page before it ships"),
    ("return a book", "start a return from the order page within 30 days"),
    ("get a refund", "refunds reach your card 5 days after we receive the return"),
    ("use a gift card", "enter the code at checkout under Gift card"),
    ("contact a human", "write to help@harbor.example and we answer within a day"),
    ("update my email", "change it under Account, then Profile"),
    ("delete my account", "ask for deletion under Account, then Privacy"),
    ("find my invoice", "download it from the order page"),
    ("change delivery speed", "pick Express at checkout for next-day delivery"),
    ("pay by invoice", "business accounts can pay by invoice at checkout"),
    ("order an ebook", "ebooks appear in your Library right after payment"),
    ("pre-order a book", "press Pre-order on the book page and we ship on release"),
    ("report a damaged book", "send a photo to help@harbor.example for a free replacement"),
]
QUESTION_FORMS = ["How do I {}?", "Can you tell me how to {}?"]


def styled_answer(hint: str) -> str:
    """The fixed style a run should learn: a fixed opening and closing around the hint."""
    return f"Ahoy, reader! To sail through this, {hint}. Fair winds from Harbor Books!"


def support_rows() -> list[dict[str, Any]]:
    rows = []
    for form in QUESTION_FORMS:
        for topic, hint in TOPICS:
            rows.append({"messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": form.format(topic)},
                {"role": "assistant", "content": styled_answer(hint)},
            ]})
    return rows


def write_version(store: Path, dataset: str, version: str, splits: dict[str, list[Any]]) -> Path:
    directory = store / dataset / version
    directory.mkdir(parents=True)
    entries = {}
    for split, rows in splits.items():
        path = directory / f"{split}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        entries[split] = file_entry(path, rows=len(rows))
    manifest = {"schema_version": 1, "dataset": dataset, "version": version,
                "created_at": "2026-01-01T00:00:00Z", "splits": entries}
    (directory / MANIFEST).write_bytes(dump_json(manifest))
    return directory
