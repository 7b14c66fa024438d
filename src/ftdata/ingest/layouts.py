"""Layouts: map one input object onto a canonical record.

A file's layout is decided once (`ftdata.ingest.detect`) and becomes a `LayoutPlan`; `mapper(plan)` turns
the plan into a per-row function `obj -> (record, label, group)` that raises `RowRejected` for rows that
cannot be mapped. The messages and preference layouts keep the object as given (validation must see
unknown keys, nulls and bad roles) minus the label/group keys; the other layouts build the messages.
Text is never trimmed or normalised here: that is the normalize stage's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

# The mapped layouts take a column of this name as the row's system prompt unless --system-col names another.
DEFAULT_SYSTEM_COLUMN = "system"
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "system": "system",
}

Mapped = tuple[dict[str, Any], str | None, str | None]
Mapper = Callable[[dict[str, Any]], Mapped]


class RowRejected(Exception):
    """One row cannot be mapped onto a record; the file goes on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class LayoutPlan:
    layout: str
    user_col: str | None = None
    assistant_col: str | None = None
    system_col: str | None = None
    label_col: str | None = None
    group_col: str | None = None

    @property
    def kind(self) -> str:
        return "preference" if self.layout == "preference" else "chat"

    def named_columns(self) -> dict[str, str]:
        """flag -> column for every column this plan reads by name (checked against tabular headers)."""
        named = {
            "--user-col": self.user_col,
            "--assistant-col": self.assistant_col,
            "--label-col": self.label_col,
            "--group-col": self.group_col,
        }
        if self.system_col != DEFAULT_SYSTEM_COLUMN:
            named["--system-col"] = self.system_col
        return {flag: column for flag, column in named.items() if column is not None}


def _text(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise RowRejected("missing_column_value", f"{key!r} is missing or null")
        return None
    if type(value) is not str:
        raise RowRejected("invalid_column_type", f"{key!r} is a JSON {json_type(value)}, not a string")
    return value


def tag(value: Any) -> str | None:
    """LABEL/GROUP as text: strings as they are, other JSON values as canonical JSON, empty as none."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _with_system(plan: LayoutPlan, obj: dict[str, Any], messages: list[Any]) -> list[Any]:
    if plan.system_col is None:
        return messages
    system = _text(obj, plan.system_col, required=False)
    if not system:  # an empty system cell means "no system prompt for this row"
        return messages
    return [{"role": "system", "content": system}, *messages]


def _tags(plan: LayoutPlan, obj: dict[str, Any]) -> tuple[str | None, str | None]:
    label = tag(obj.get(plan.label_col)) if plan.label_col else None
    group = tag(obj.get(plan.group_col)) if plan.group_col else None
    return label, group


def _as_given(plan: LayoutPlan) -> Mapper:
    popped = {c for c in (plan.label_col, plan.group_col) if c}

    def keep(obj: dict[str, Any]) -> Mapped:
        if not popped or popped.isdisjoint(obj):
            return obj, None, None
        label, group = _tags(plan, obj)
        return {k: v for k, v in obj.items() if k not in popped}, label, group

    return keep


def _columns(plan: LayoutPlan) -> Mapper:
    user_col, assistant_col = plan.user_col or "", plan.assistant_col or ""

    def build(obj: dict[str, Any]) -> Mapped:
        messages = [
            {"role": "user", "content": _text(obj, user_col)},
            {"role": "assistant", "content": _text(obj, assistant_col)},
        ]
        return {"messages": _with_system(plan, obj, messages)}, *_tags(plan, obj)

    return build


def _prompt_side(value: Any, key: str, role: str) -> list[Any]:
    """A prompt/completion value: a string (standard) or a list of messages (TRL conversational)."""
    if value is None:
        raise RowRejected("missing_column_value", f"{key!r} is missing or null")
    if type(value) is str:
        return [{"role": role, "content": value}]
    if type(value) is list:
        return value
    raise RowRejected(
        "invalid_column_type", f"{key!r} is a JSON {json_type(value)}, not a string or a list of messages"
    )


def _prompt_completion(plan: LayoutPlan) -> Mapper:
    def build(obj: dict[str, Any]) -> Mapped:
        messages = _prompt_side(obj.get("prompt"), "prompt", "user")
        messages = messages + _prompt_side(obj.get("completion"), "completion", "assistant")
        return {"messages": _with_system(plan, obj, messages)}, *_tags(plan, obj)

    return build


def _alpaca(plan: LayoutPlan) -> Mapper:
    def build(obj: dict[str, Any]) -> Mapped:
        user = _text(obj, "instruction") or ""
        extra = _text(obj, "input", required=False)
        if extra:
            user = f"{user}\n\n{extra}"
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": _text(obj, "output")}]
        return {"messages": _with_system(plan, obj, messages)}, *_tags(plan, obj)

    return build


def _sharegpt(plan: LayoutPlan) -> Mapper:
    def build(obj: dict[str, Any]) -> Mapped:
        turns = obj.get("conversations")
        if turns is None:
            raise RowRejected("missing_column_value", "'conversations' is missing or null")
        if type(turns) is not list:
            raise RowRejected("invalid_column_type", f"'conversations' is a JSON {json_type(turns)}, not an array")
        messages: list[Any] = []
        for i, turn in enumerate(turns):
            where = f"conversations[{i}]"
            if type(turn) is not dict:
                raise RowRejected("invalid_sharegpt_turn", f"{where} is a JSON {json_type(turn)}, not an object")
            speaker, value = turn.get("from"), turn.get("value")
            if type(speaker) is not str:
                raise RowRejected("invalid_sharegpt_turn", f"{where}.from is a JSON {json_type(speaker)}, not a string")
            role = SHAREGPT_ROLES.get(speaker.lower())
            if role is None:
                known = ", ".join(SHAREGPT_ROLES)
                raise RowRejected("unknown_sharegpt_role", f"{where}.from is {speaker!r}; known: {known}")
            if type(value) is not str:
                raise RowRejected("invalid_sharegpt_turn", f"{where}.value is a JSON {json_type(value)}, not a string")
            message: dict[str, Any] = {"role": role, "content": value}
            if "weight" in turn:  # axolotl-style per-turn training weight
                message["weight"] = turn["weight"]
            messages.append(message)
        return {"messages": _with_system(plan, obj, messages)}, *_tags(plan, obj)

    return build


_MAPPERS: dict[str, Callable[[LayoutPlan], Mapper]] = {
    "messages": _as_given,
    "preference": _as_given,
    "columns": _columns,
    "prompt_completion": _prompt_completion,
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
}


def mapper(plan: LayoutPlan) -> Mapper:
    return _MAPPERS[plan.layout](plan)
