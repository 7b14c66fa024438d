"""ftdata.load_hf: a version's splits as a datasets.DatasetDict in TRL's formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import ftdata
from ftdata.store import MANIFEST, StoreError, dump_json, file_entry

pytest.importorskip("datasets")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    }
]
CHAT_TRAIN = [
    {
        "messages": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Where is order 42?"},
            {"role": "assistant", "content": "Let me check.", "weight": 0},
            {"role": "user", "content": "Please."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "42"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
            {"role": "assistant", "content": "Order 42 has shipped."},
        ],
        "tools": TOOLS,
    },
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
]
CHAT_VALIDATION = [{"messages": [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye!"}]}]
PREFERENCE_TRAIN = [
    {
        "input": {"messages": [{"role": "user", "content": "Say hi politely"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello, how can I help?"}],
        "non_preferred_output": [{"role": "assistant", "content": "what"}],
    }
]


def write_version(store: Path, dataset: str, version: str, splits: dict[str, list[Any]]) -> Path:
    directory = store / dataset / version
    directory.mkdir(parents=True)
    entries = {}
    for split, rows in splits.items():
        path = directory / f"{split}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        entries[split] = file_entry(path, rows=len(rows))
    manifest = {"schema_version": 1, "dataset": dataset, "version": version, "created_at": "2026-01-01T00:00:00Z",
                "splits": entries}
    (directory / MANIFEST).write_bytes(dump_json(manifest))
    return directory


def test_chat_version_round_trips_messages_and_tools(tmp_path: Path) -> None:
    write_version(tmp_path, "support", "abc123", {"train": CHAT_TRAIN, "validation": CHAT_VALIDATION})

    loaded = ftdata.load_hf("support@latest", store=tmp_path)

    assert list(loaded) == ["train", "validation"]
    assert loaded["train"].column_names == ["messages", "tools"]
    assert loaded["train"][0]["messages"] == CHAT_TRAIN[0]["messages"]  # weight/tool_calls only where they were
    assert loaded["train"][0]["tools"] == TOOLS
    assert loaded["train"][1]["messages"] == CHAT_TRAIN[1]["messages"]
    assert loaded["train"][1]["tools"] is None
    assert loaded["validation"].num_rows == 1


def test_chat_version_without_tools_has_only_messages(tmp_path: Path) -> None:
    write_version(tmp_path, "small", "v1", {"train": CHAT_VALIDATION, "validation": [], "test": CHAT_VALIDATION})

    loaded = ftdata.load_hf("small@v1", store=str(tmp_path))

    assert {split: ds.column_names for split, ds in loaded.items()} == {
        "train": ["messages"], "validation": ["messages"], "test": ["messages"]
    }
    assert loaded["validation"].num_rows == 0
    assert loaded["test"][0]["messages"][1] == {"role": "assistant", "content": "Goodbye!"}


def test_preference_version_loads_in_trl_preference_format(tmp_path: Path) -> None:
    write_version(tmp_path, "prefs", "p1", {"train": PREFERENCE_TRAIN})

    loaded = ftdata.load_hf("prefs", store=tmp_path)

    assert loaded["train"].column_names == ["prompt", "chosen", "rejected"]
    assert loaded["train"][0] == {
        "prompt": [{"role": "user", "content": "Say hi politely"}],
        "chosen": [{"role": "assistant", "content": "Hello, how can I help?"}],
        "rejected": [{"role": "assistant", "content": "what"}],
    }


def test_version_prefix_resolves(tmp_path: Path) -> None:
    write_version(tmp_path, "support", "3f2a9c", {"train": CHAT_VALIDATION})

    assert ftdata.load_hf("support@3f2", store=tmp_path)["train"].num_rows == 1


def test_row_of_unknown_layout_names_file_and_line(tmp_path: Path) -> None:
    directory = write_version(tmp_path, "bad", "v1", {"train": [CHAT_VALIDATION[0], {"question": "?", "answer": "!"}]})

    with pytest.raises(StoreError) as excinfo:
        ftdata.load_hf("bad@v1", store=tmp_path)

    assert str(excinfo.value).startswith(f"{directory / 'train.jsonl'}:2: neither a chat row")
    assert "answer, question" in str(excinfo.value)


def test_mixed_kinds_are_refused(tmp_path: Path) -> None:
    directory = write_version(tmp_path, "mixed", "v1", {"train": CHAT_VALIDATION, "validation": PREFERENCE_TRAIN})

    with pytest.raises(StoreError, match="a preference row in a chat version") as excinfo:
        ftdata.load_hf("mixed@v1", store=tmp_path)

    assert str(excinfo.value).startswith(f"{directory / 'validation.jsonl'}:1:")


def test_unknown_dataset_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no dataset 'nope'"):
        ftdata.load_hf("nope@latest", store=tmp_path)
