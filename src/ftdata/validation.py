"""OpenAI fine-tuning format rules, checked on parsed JSON objects.

`validate_record(obj, kind)` returns every problem of one training example as `Problem(reason, detail)`;
an empty list means OpenAI's fine-tuning API would accept the row. It never raises, whatever `obj` is.

Rules follow OpenAI's fine-tuning data-format docs and the API's `FineTuneChatRequestInput` /
`FineTunePreferenceRequestInput` schemas, and fix what the cookbook's "data format validation" checker
gets wrong: an assistant message that carries `tool_calls` needs no content; `weight` is checked (only on
assistant messages, only the integers 0 and 1, at least one trained assistant message); the last message
must come from the assistant; every `tool` reply must answer a call made by the assistant just before it,
and every call must be answered before the conversation moves on.

Decisions where the docs leave room:
- Roles are system, user, assistant and tool. `developer` is reported as `invalid_role` (the fine-tuning
  schemas do not list it; use `system`). The legacy `function` role, `function_call` and top-level
  `functions` are reported as `deprecated_function_calling`: convert them to `tool_calls` / `tools`.
- `content` may be a string or an array of content parts: `{"type": "text", "text": ...}` for every
  role, plus `{"type": "image_url", "image_url": {"url": ...}}` on user messages (vision fine-tuning).
- An assistant message may leave `content` null or out (or empty) when it carries `tool_calls` or a
  `refusal`; `"refusal": null`, which every exported chat completion carries, is accepted.
- Preference rows (DPO): `input.messages` has no assistant-last rule (the outputs are the assistant turn);
  each output is a list holding exactly one assistant message, and the two outputs must differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

KINDS = ("chat", "preference")
ROLES = ("system", "user", "assistant", "tool")

_ROLE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight", "tool_calls", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
# Keys the format knows on some role: on another role they are misplaced, not unknown.
_MESSAGE_KEYS = frozenset().union(*_ROLE_KEYS.values())
_CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
_PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
_TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
_TOOL_CALL_FUNCTION_KEYS = frozenset({"name", "arguments"})
_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MISSING = object()
# A tuple, not a set: `in` on a tuple compares with ==, so an unhashable role (a list) cannot raise.
_PLAIN_ROLES = ("user", "assistant", "system")


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    detail: str


def validate_record(obj: Any, kind: str = "chat") -> list[Problem]:
    """Every format problem of one example of `kind` ("chat" or "preference"); [] when valid."""
    problems: list[Problem] = []
    if kind == "chat":
        _check_chat(obj, problems)
    elif kind == "preference":
        _check_preference(obj, problems)
    else:
        problems.append(Problem("unknown_kind", f"row kind {_show(kind)} is not one of {', '.join(KINDS)}"))
    return problems


def _show(value: Any, limit: int = 60) -> str:
    """A short repr for details: rows can hold megabytes, a message should not. Dict keys are sorted, so
    the detail does not depend on the input's key order (ingest checks records before they are
    serialised with sorted keys; `check` and the frame path see them after)."""
    text = repr(_sorted_keys(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sorted_keys(value: Any) -> Any:
    if type(value) is dict:
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=str)}
    if type(value) is list:
        return [_sorted_keys(v) for v in value]
    return value


def _unknown_keys(obj: dict[str, Any], allowed: frozenset[str], where: str, problems: list[Problem]) -> None:
    for key in sorted(k for k in obj if k not in allowed):
        if key in ("functions", "function_call"):
            problems.append(
                Problem("deprecated_function_calling", f"{where}{key}: legacy function calling; use tools/tool_calls")
            )
        else:
            problems.append(Problem("unknown_key", f"{where}{key}: unknown key"))


def _check_chat(obj: Any, problems: list[Problem]) -> None:
    if type(obj) is not dict:
        problems.append(Problem("not_an_object", f"example is {type(obj).__name__}, not a JSON object"))
        return
    if not obj.keys() <= _CHAT_KEYS:
        _unknown_keys(obj, _CHAT_KEYS, "", problems)
    tool_names = _check_tool_context(obj, "", problems)
    messages = obj.get("messages", _MISSING)
    if not _check_message_list(messages, "messages", problems):
        return
    assistants, trained = _check_conversation(messages, "messages", tool_names, problems, final=True)
    if not assistants:
        problems.append(Problem("missing_assistant_message", "messages: no assistant message to train on"))
        return
    if not trained:
        problems.append(Problem("no_trainable_assistant", "messages: every assistant message has weight 0"))
    last = messages[-1]
    if type(last) is dict:
        role = last.get("role")
        if type(role) is str and role in _ROLE_KEYS and role != "assistant":  # a bad role is reported already
            problems.append(
                Problem(
                    "last_message_not_assistant",
                    f"messages[{len(messages) - 1}]: last message is from {role!r}, not the assistant",
                )
            )


def _check_message_list(messages: Any, where: str, problems: list[Problem]) -> bool:
    if messages is _MISSING:
        problems.append(Problem("missing_messages", f"{where}: missing"))
    elif type(messages) is not list:
        problems.append(Problem("messages_not_list", f"{where}: is {type(messages).__name__}, not a list"))
    elif not messages:
        problems.append(Problem("empty_messages", f"{where}: empty list"))
    else:
        return True
    return False


def _check_tool_context(obj: dict[str, Any], where: str, problems: list[Problem]) -> frozenset[str] | None:
    """Check `tools` and `parallel_tool_calls`; return the declared function names (None: no `tools`)."""
    parallel = obj.get("parallel_tool_calls", _MISSING)
    if parallel is not _MISSING and type(parallel) is not bool:
        problems.append(
            Problem("invalid_parallel_tool_calls", f"{where}parallel_tool_calls: {_show(parallel)} is not a boolean")
        )
    tools = obj.get("tools", _MISSING)
    if tools is _MISSING:
        return None
    if type(tools) is not list:
        problems.append(Problem("invalid_tools", f"{where}tools: is {type(tools).__name__}, not a list"))
        return None
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name = _check_tool_definition(tool, f"{where}tools[{i}]", problems)
        if name is None:
            continue
        if name in names:
            problems.append(Problem("duplicate_tool_name", f"{where}tools[{i}]: function {name!r} is defined twice"))
        names.add(name)
    return frozenset(names)


def _check_tool_definition(tool: Any, where: str, problems: list[Problem]) -> str | None:
    def bad(detail: str) -> None:
        problems.append(Problem("invalid_tool_definition", f"{where}{detail}"))

    if type(tool) is not dict:
        bad(f": is {type(tool).__name__}, not an object")
        return None
    if not tool.keys() <= _TOOL_KEYS:
        _unknown_keys(tool, _TOOL_KEYS, f"{where}.", problems)
    if tool.get("type") != "function":
        bad(f".type: {_show(tool.get('type'))} is not 'function'")
    function = tool.get("function")
    if type(function) is not dict:
        bad(".function: missing or not an object")
        return None
    if not function.keys() <= _FUNCTION_KEYS:
        _unknown_keys(function, _FUNCTION_KEYS, f"{where}.function.", problems)
    description = function.get("description")
    if description is not None and type(description) is not str:
        bad(".function.description: not a string")
    strict = function.get("strict")
    if strict is not None and type(strict) is not bool:
        bad(".function.strict: not a boolean")
    parameters = function.get("parameters", _MISSING)
    if parameters is not _MISSING:
        if type(parameters) is not dict:
            bad(".function.parameters: not a JSON-schema object")
        elif parameters.get("type", "object") != "object":
            bad(f".function.parameters.type: {_show(parameters.get('type'))} is not 'object'")
    name = function.get("name")
    if type(name) is not str or not _FUNCTION_NAME.fullmatch(name):
        bad(f".function.name: {_show(name)} must be 1-64 letters, digits, '_' or '-'")
        return None
    return name


def _check_conversation(
    messages: list[Any], where: str, tool_names: frozenset[str] | None, problems: list[Problem], final: bool
) -> tuple[int, int]:
    """Check every message and the tool-call/reply pairing; return (assistant messages, trained ones).

    `final`: the conversation ends here (chat rows), so calls made by its last message need no reply.
    """
    assistants = trained = 0
    pending: dict[str, int] = {}  # call id -> index of the assistant message that made the call
    call_ids: set[str] = set()
    last = len(messages) - 1
    for i, message in enumerate(messages):
        # Fast path for the overwhelmingly common {"role", "content"} message with text content: it cannot
        # hold a problem, so skip building locations and the per-key checks (validate runs on 1M rows).
        if type(message) is dict and len(message) == 2 and not pending:
            content = message.get("content")
            role = message.get("role")
            if type(content) is str and content and not content.isspace() and role in _PLAIN_ROLES:
                if role == "assistant":
                    assistants += 1
                    trained += 1
                continue
        loc = f"{where}[{i}]"
        if type(message) is not dict:
            problems.append(Problem("message_not_object", f"{loc}: is {type(message).__name__}, not an object"))
            continue
        role = _check_message(message, loc, tool_names, problems)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if type(call_id) is not str or not call_id:
                problems.append(Problem("missing_tool_call_id", f"{loc}: tool message without a tool_call_id"))
            elif call_id in pending:
                del pending[call_id]
            elif call_id in call_ids:
                problems.append(Problem("duplicate_tool_reply", f"{loc}: call {call_id!r} was already answered"))
            else:
                problems.append(
                    Problem("unmatched_tool_reply", f"{loc}: tool_call_id {call_id!r} matches no earlier tool call")
                )
            continue
        if pending:
            _report_unanswered(pending, where, f"before {loc}", problems)
        if role == "assistant":
            assistants += 1
            if message.get("weight") != 0:
                trained += 1
            calls = message.get("tool_calls")
            if type(calls) is list:
                for j, call in enumerate(calls):
                    call_id = call.get("id") if type(call) is dict else None
                    if type(call_id) is not str or not call_id:
                        continue
                    if call_id in call_ids:
                        problems.append(
                            Problem("duplicate_tool_call_id", f"{loc}.tool_calls[{j}].id: {call_id!r} used twice")
                        )
                        continue
                    call_ids.add(call_id)
                    pending[call_id] = i
    if pending and not (final and next(iter(pending.values())) == last):
        _report_unanswered(pending, where, "at the end", problems)
    return assistants, trained


def _report_unanswered(pending: dict[str, int], where: str, when: str, problems: list[Problem]) -> None:
    for call_id, index in pending.items():
        problems.append(
            Problem("missing_tool_reply", f"{where}[{index}]: tool call {call_id!r} has no tool reply {when}")
        )
    pending.clear()


def _check_message(
    message: dict[str, Any], loc: str, tool_names: frozenset[str] | None, problems: list[Problem]
) -> str | None:
    """Check one message on its own; return its role when that is a valid role."""
    role = message.get("role", _MISSING)
    if role is _MISSING:
        problems.append(Problem("missing_role", f"{loc}: message without a role"))
        role = None
    elif type(role) is not str or role not in _ROLE_KEYS:
        if role == "function":
            problems.append(
                Problem("deprecated_function_calling", f"{loc}.role: legacy 'function' role; use 'tool' replies")
            )
        else:
            hint = " (use 'system')" if role == "developer" else ""
            detail = f"{loc}.role: {_show(role)} is not one of {', '.join(ROLES)}{hint}"
            problems.append(Problem("invalid_role", detail))
        role = None
    allowed = _ROLE_KEYS[role] if role is not None else _MESSAGE_KEYS
    if not message.keys() <= allowed:
        for key in sorted(k for k in message if k not in allowed):
            if key == "weight":
                detail = f"{loc}.weight: only assistant messages take a weight"
                problems.append(Problem("weight_on_non_assistant", detail))
            elif key in _MESSAGE_KEYS:
                problems.append(Problem("misplaced_key", f"{loc}.{key}: not allowed on a {role} message"))
            elif key == "function_call":
                detail = f"{loc}.function_call: legacy function calling; use tool_calls"
                problems.append(Problem("deprecated_function_calling", detail))
            else:
                problems.append(Problem("unknown_key", f"{loc}.{key}: unknown key"))
    name = message.get("name", _MISSING)
    if name is not _MISSING and (type(name) is not str or not name):
        problems.append(Problem("invalid_name", f"{loc}.name: {_show(name)} is not a non-empty string"))
    content_optional = False
    if role == "assistant":
        weight = message.get("weight", _MISSING)
        if weight is not _MISSING and (type(weight) is not int or weight not in (0, 1)):
            problems.append(Problem("invalid_weight", f"{loc}.weight: {_show(weight)} is not the integer 0 or 1"))
        calls = message.get("tool_calls", _MISSING)
        if calls is not _MISSING:
            content_optional = _check_tool_calls(calls, loc, tool_names, problems)
        # A legacy function_call (already reported) stands in for content: do not report that twice.
        content_optional = content_optional or "function_call" in message
        refusal = message.get("refusal")
        if refusal is not None:
            if type(refusal) is str and refusal.strip():
                content_optional = True  # a refusal, like tool calls, stands in for content
            else:
                detail = f"{loc}.refusal: {_show(refusal)} is not a non-empty string"
                problems.append(Problem("invalid_refusal", detail))
    _check_content(message.get("content", _MISSING), role, loc, content_optional, problems)
    return role


def _check_content(
    content: Any, role: str | None, loc: str, content_optional: bool, problems: list[Problem]
) -> None:
    if type(content) is str:
        if (not content or content.isspace()) and not content_optional:
            problems.append(Problem("empty_content", f"{loc}.content: empty or whitespace only"))
    elif content is _MISSING or content is None:
        if not content_optional:
            state = "missing" if content is _MISSING else "null"
            hint = " (null is allowed only with tool_calls)" if role == "assistant" else ""
            problems.append(Problem("missing_content", f"{loc}.content: {state}{hint}"))
    elif type(content) is list:
        _check_content_parts(content, role, loc, content_optional, problems)
    else:
        detail = f"{loc}.content: is {type(content).__name__}, not a string or list of parts"
        problems.append(Problem("invalid_content_type", detail))


def _check_content_parts(
    parts: list[Any], role: str | None, loc: str, content_optional: bool, problems: list[Problem]
) -> None:
    has_text = False
    for k, part in enumerate(parts):
        ploc = f"{loc}.content[{k}]"
        kind = part.get("type") if type(part) is dict else None
        if kind == "text" and type(part.get("text")) is str and part.keys() <= {"type", "text"}:
            has_text = has_text or not (not part["text"] or part["text"].isspace())
        elif kind == "image_url" and role == "user" and _is_image_part(part):
            has_text = True  # an image is content too
        elif kind == "image_url" and _is_image_part(part):
            problems.append(Problem("invalid_content_part", f"{ploc}: images are allowed only in user messages"))
        else:
            detail = f"{ploc}: {_show(part)} is not a text part {{'type': 'text', 'text': str}}"
            problems.append(Problem("invalid_content_part", detail))
    if not has_text and not content_optional:
        problems.append(Problem("empty_content", f"{loc}.content: no non-empty text part"))


def _is_image_part(part: dict[str, Any]) -> bool:
    image = part.get("image_url")
    return part.keys() <= {"type", "image_url"} and type(image) is dict and type(image.get("url")) is str


def _check_tool_calls(calls: Any, loc: str, tool_names: frozenset[str] | None, problems: list[Problem]) -> bool:
    """Check an assistant's tool_calls; return whether it holds at least one call."""
    if type(calls) is not list or not calls:
        problems.append(Problem("invalid_tool_calls", f"{loc}.tool_calls: {_show(calls)} is not a non-empty list"))
        return False
    for j, call in enumerate(calls):
        cloc = f"{loc}.tool_calls[{j}]"
        if type(call) is not dict:
            problems.append(Problem("invalid_tool_call", f"{cloc}: is {type(call).__name__}, not an object"))
            continue
        if not call.keys() <= _TOOL_CALL_KEYS:
            _unknown_keys(call, _TOOL_CALL_KEYS, f"{cloc}.", problems)
        call_id = call.get("id")
        if type(call_id) is not str or not call_id:
            problems.append(Problem("invalid_tool_call", f"{cloc}.id: {_show(call_id)} is not a non-empty string"))
        if call.get("type") != "function":
            problems.append(Problem("invalid_tool_call", f"{cloc}.type: {_show(call.get('type'))} is not 'function'"))
        function = call.get("function")
        if type(function) is not dict:
            problems.append(Problem("invalid_tool_call", f"{cloc}.function: missing or not an object"))
            continue
        if not function.keys() <= _TOOL_CALL_FUNCTION_KEYS:
            _unknown_keys(function, _TOOL_CALL_FUNCTION_KEYS, f"{cloc}.function.", problems)
        name = function.get("name")
        if type(name) is not str or not name:
            detail = f"{cloc}.function.name: {_show(name)} is not a non-empty string"
            problems.append(Problem("invalid_tool_call", detail))
        elif tool_names is not None and name not in tool_names:
            problems.append(Problem("undefined_tool", f"{cloc}.function.name: {name!r} is not among the row's tools"))
        _check_arguments(function.get("arguments", _MISSING), cloc, problems)
    return True


def _check_arguments(arguments: Any, cloc: str, problems: list[Problem]) -> None:
    where = f"{cloc}.function.arguments"
    if type(arguments) is not str:
        state = "missing" if arguments is _MISSING else f"is {type(arguments).__name__}"
        problems.append(Problem("invalid_tool_arguments", f"{where}: {state}, not a JSON string"))
        return
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        problems.append(Problem("invalid_tool_arguments", f"{where}: not valid JSON ({exc})"))
        return
    if type(parsed) is not dict:
        problems.append(Problem("invalid_tool_arguments", f"{where}: JSON {type(parsed).__name__}, not an object"))


def _check_preference(obj: Any, problems: list[Problem]) -> None:
    if type(obj) is not dict:
        problems.append(Problem("not_an_object", f"example is {type(obj).__name__}, not a JSON object"))
        return
    if not obj.keys() <= _PREFERENCE_KEYS:
        _unknown_keys(obj, _PREFERENCE_KEYS, "", problems)
    tool_names: frozenset[str] | None = None
    prompt = obj.get("input", _MISSING)
    if prompt is _MISSING:
        problems.append(Problem("missing_input", "input: missing"))
    elif type(prompt) is not dict:
        problems.append(Problem("invalid_input", f"input: is {type(prompt).__name__}, not an object"))
    else:
        if not prompt.keys() <= _CHAT_KEYS:
            _unknown_keys(prompt, _CHAT_KEYS, "input.", problems)
        tool_names = _check_tool_context(prompt, "input.", problems)
        messages = prompt.get("messages", _MISSING)
        if _check_message_list(messages, "input.messages", problems):
            _check_conversation(messages, "input.messages", tool_names, problems, final=False)
    preferred = _check_output(obj, "preferred_output", tool_names, problems)
    non_preferred = _check_output(obj, "non_preferred_output", tool_names, problems)
    if preferred is not None and preferred == non_preferred:
        problems.append(Problem("identical_outputs", "preferred_output and non_preferred_output are the same message"))


def _check_output(
    obj: dict[str, Any], key: str, tool_names: frozenset[str] | None, problems: list[Problem]
) -> dict[str, Any] | None:
    """Check one DPO output: a list holding exactly one assistant message. Return that message if valid."""
    output = obj.get(key, _MISSING)
    if output is _MISSING:
        problems.append(Problem("missing_output", f"{key}: missing"))
        return None
    if type(output) is not list or len(output) != 1:
        shape = f"a list of {len(output)}" if type(output) is list else type(output).__name__
        problems.append(Problem("invalid_output", f"{key}: is {shape}, not a list with exactly one assistant message"))
        return None
    message = output[0]
    loc = f"{key}[0]"
    if type(message) is not dict:
        problems.append(Problem("message_not_object", f"{loc}: is {type(message).__name__}, not an object"))
        return None
    before = len(problems)
    role = _check_message(message, loc, tool_names, problems)
    if role is not None and role != "assistant":
        problems.append(Problem("invalid_output", f"{loc}.role: {role!r}; an output is an assistant message"))
    return message if len(problems) == before else None
