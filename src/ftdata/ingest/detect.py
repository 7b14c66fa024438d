"""Layout detection: which layout a file uses, decided once per file from its header or first objects.

Flags decide first (`--layout`, or `--user-col`/`--assistant-col` meaning the columns layout), then the
keys: `messages`, DPO `preferred_output`, ShareGPT `conversations`, alpaca `instruction`+`output`,
`prompt`+`completion`, and finally common column pairs such as question/answer. When nothing decides,
the error names the file, what it saw and the flags that would map it.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Iterable, Sequence

from ftdata.ingest.layouts import DEFAULT_SYSTEM_COLUMN, LayoutPlan
from ftdata.ingest.options import IngestError, IngestOptions

# Column pairs recognised without flags, most specific first.
COMMON_PAIRS: tuple[tuple[str, str], ...] = (
    ("question", "answer"),
    ("prompt", "response"),
    ("prompt", "completion"),
    ("instruction", "output"),
    ("input", "output"),
    ("user", "assistant"),
)
# How many JSON objects to look at for a layout before giving up on a file.
DETECT_OBJECTS = 1000
# Column names suggested as --label-col in the "cannot detect" message.
_LABEL_HINTS = ("category", "label", "topic", "intent", "class", "tag")


def _pair(keys: Collection[str], user: str | None, assistant: str | None) -> tuple[str, str] | None:
    """The user/assistant columns: as named, with a side not named taken from the first common pair that fits."""
    if user is not None and assistant is not None:
        return user, assistant
    for user_key, assistant_key in COMMON_PAIRS:
        pair = (user or user_key, assistant or assistant_key)
        if pair[0] != pair[1] and pair[0] in keys and pair[1] in keys:
            return pair
    return None


def match_layout(keys: Collection[str], options: IngestOptions) -> LayoutPlan | None:
    """The plan for an input with these keys/columns, or None when neither flags nor keys decide it."""
    layout = options.layout
    if layout == "auto":
        if options.user_col or options.assistant_col:
            layout = "columns"
        elif "messages" in keys:
            layout = "messages"
        elif "preferred_output" in keys or "non_preferred_output" in keys:
            layout = "preference"
        elif "conversations" in keys:
            layout = "sharegpt"
        elif "instruction" in keys and "output" in keys:
            layout = "alpaca"
        elif "prompt" in keys and "completion" in keys:
            layout = "prompt_completion"
        elif _pair(keys, None, None):
            layout = "columns"
        else:
            return None
    user_col = assistant_col = system_col = None
    if layout == "columns":
        pair = _pair(keys, options.user_col, options.assistant_col)
        if pair is None:
            return None
        user_col, assistant_col = pair
    if layout not in ("messages", "preference"):
        system_col = options.system_col or (DEFAULT_SYSTEM_COLUMN if DEFAULT_SYSTEM_COLUMN in keys else None)
    return LayoutPlan(layout, user_col, assistant_col, system_col, options.label_col, options.group_col)


def check_options(options: IngestOptions, plan: LayoutPlan, source: str) -> None:
    """Refuse column flags a layout would silently ignore."""
    if plan.layout in ("messages", "preference"):
        used = [flag for flag, value in (("--user-col", options.user_col), ("--assistant-col", options.assistant_col),
                                         ("--system-col", options.system_col)) if value]
        if used:
            raise IngestError(
                f"{source}: {', '.join(used)} do not apply to the {plan.layout} layout, whose rows already hold "
                "their messages; drop the flag or choose --layout columns"
            )
    elif plan.layout != "columns" and (options.user_col or options.assistant_col):
        raise IngestError(f"{source}: --user-col/--assistant-col apply to --layout columns, not {plan.layout}")


def undetectable(source: str, keys: Sequence[str], what: str) -> IngestError:
    """The error for a file whose layout cannot be detected: what it saw and the flags that would map it."""
    shown = ", ".join(keys[:40]) + (f", … ({len(keys)} in all)" if len(keys) > 40 else "")
    label = next((k for k in keys if k.lower() in _LABEL_HINTS), None)
    texts = [k for k in keys if k != label]
    if len(texts) >= 2:
        example = f"--user-col {shlex.quote(texts[0])} --assistant-col {shlex.quote(texts[1])}"
    else:
        example = "--user-col COLUMN --assistant-col COLUMN"
    if label is not None:
        example += f" --label-col {shlex.quote(label)}"
    return IngestError(
        f"{source}: cannot detect the layout; {what} seen: {shown or '(none)'}. "
        f"Map them with flags, e.g. `{example}` (plus --system-col/--label-col/--group-col COLUMN as needed), "
        "or name the layout with --layout messages|prompt_completion|alpaca|sharegpt|preference"
    )


def plan_for_columns(columns: Sequence[str], source: str, options: IngestOptions) -> LayoutPlan:
    """The plan for a tabular file (CSV, Parquet): every column a flag names must exist."""
    plan = match_layout(columns, options)
    if plan is None:
        raise undetectable(source, columns, "columns")
    check_options(options, plan, source)
    missing = {flag: column for flag, column in plan.named_columns().items() if column not in columns}
    if missing:
        named = ", ".join(f"{flag} {column!r}" for flag, column in missing.items())
        raise IngestError(f"{source}: no such column for {named}; the columns are: {', '.join(columns)}")
    return plan


def plan_for_objects(objects: Iterable[object], source: str, options: IngestOptions) -> LayoutPlan | None:
    """The plan of the first JSON object that decides one; None when there is no JSON object at all."""
    seen: dict[str, None] = {}
    count = 0
    for obj in objects:
        if type(obj) is not dict:
            continue
        plan = match_layout(obj.keys(), options)
        if plan is not None:
            check_options(options, plan, source)
            return plan
        seen.update(dict.fromkeys(obj))
        count += 1
        if count >= DETECT_OBJECTS:
            break
    if count:
        raise undetectable(source, list(seen), "keys")
    return None
