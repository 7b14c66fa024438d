"""A dataset version as a Hugging Face `datasets.DatasetDict`, in the formats TRL trains from.

Chat versions become one column `messages` (plus `tools` when any row declares tools); preference
versions (OpenAI DPO rows) become TRL's conversational preference format: `prompt`, `chosen`,
`rejected`, each a list of messages (plus `tools`). Messages are stored with the `datasets.Json`
feature, so every message round-trips exactly: optional keys (`weight`, `tool_calls`, `name`, ...)
stay on the messages that have them instead of being filled in with nulls on all the others, and
`tools` (JSON schemas of arbitrary shape) need no common Arrow type.

Only the manifest and the split files it lists are read (`ftdata.store.Version`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ftdata.store import Store, StoreError, Version

if TYPE_CHECKING:
    import datasets

CHAT = "chat"
PREFERENCE = "preference"


def load_hf(ref: str, store: str | Path | None = None) -> datasets.DatasetDict:
    """Load a version's splits (e.g. `load_hf("support@latest")`) as a `datasets.DatasetDict`."""
    return version_dataset_dict(Store(store).resolve(ref))


def row_kind(row: Any) -> str:
    if isinstance(row, dict) and "messages" in row:
        return CHAT
    if isinstance(row, dict) and {"input", "preferred_output", "non_preferred_output"} <= row.keys():
        return PREFERENCE
    keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
    raise ValueError(f"neither a chat row (messages) nor a preference row (input, preferred_output, ...): {keys}")


def version_dataset_dict(version: Version) -> datasets.DatasetDict:
    from datasets import Dataset, DatasetDict, Features, Json, List

    rows_by_split: dict[str, list[dict[str, Any]]] = {}
    kind: str | None = None
    for split in version.splits:
        converted = []
        for where, row in _split_rows(version, split):
            try:
                this_kind = row_kind(row)
            except ValueError as exc:
                raise StoreError(f"{where}: {exc}") from exc
            if kind is None:
                kind = this_kind
            elif this_kind != kind:
                raise StoreError(f"{where}: a {this_kind} row in a {kind} version")
            converted.append(_chat_columns(row) if this_kind == CHAT else _preference_columns(row))
        rows_by_split[split] = converted

    message_columns = ("messages",) if kind in (None, CHAT) else ("prompt", "chosen", "rejected")
    has_tools = any(row["tools"] is not None for rows in rows_by_split.values() for row in rows)
    schema: dict[str, Any] = {name: List(Json()) for name in message_columns}
    if has_tools:
        schema["tools"] = Json()
    features = Features(schema)
    return DatasetDict(
        {
            split: Dataset.from_dict({k: [row[k] for row in rows] for k in schema}, features=features)
            for split, rows in rows_by_split.items()
        }
    )


def _split_rows(version: Version, split: str) -> Iterator[tuple[str, Any]]:
    path = version.split_path(split)
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise StoreError(f"{where}: not valid JSON: {exc}") from exc


def _chat_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {"messages": row["messages"], "tools": row.get("tools")}


def _preference_columns(row: dict[str, Any]) -> dict[str, Any]:
    prompt = row["input"]
    return {
        "prompt": prompt.get("messages", []),
        "chosen": row["preferred_output"],
        "rejected": row["non_preferred_output"],
        "tools": prompt.get("tools"),
    }
