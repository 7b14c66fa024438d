"""The OpenAI fine-tuning format rules, one data file per reason under tests/data/validation/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages import validate
from ftdata.validation import Problem, validate_record

DATA = Path(__file__).parent / "data" / "validation"
PREFERENCE_REASONS = {"missing_input", "invalid_input", "missing_output", "invalid_output", "identical_outputs"}
OK_FILES = {"chat_ok": "chat", "preference_ok": "preference"}
REASON_FILES = sorted(p.stem for p in DATA.glob("*.jsonl") if p.stem not in OK_FILES)


def rows_of(name: str) -> list[Any]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def kind_of(reason: str) -> str:
    return "preference" if reason in PREFERENCE_REASONS else "chat"


def test_every_reason_the_rules_emit_has_a_file() -> None:
    # The reasons a file cannot express (the row kind, a missing or non-JSON record) are tested below.
    not_from_files = {"unknown_kind", "missing_record", "invalid_json"}
    source = (Path(validate.__file__).parent.parent / "validation.py").read_text(encoding="utf-8")
    source += Path(validate.__file__).read_text(encoding="utf-8")
    emitted = set(re.findall(r'Problem\(\s*"([a-z_]+)"', source))
    assert emitted - not_from_files == set(REASON_FILES)


@pytest.mark.parametrize("reason", REASON_FILES)
def test_reason_file_fails_on_line_two_with_exactly_that_reason(reason: str) -> None:
    kind = kind_of(reason)
    first, second = rows_of(reason)
    assert validate_record(first, kind) == []
    problems = validate_record(second, kind)
    assert [p.reason for p in problems] == [reason], problems
    assert problems[0].detail


@pytest.mark.parametrize("name", sorted(OK_FILES))
def test_valid_examples_pass(name: str) -> None:
    for line, row in enumerate(rows_of(name), start=1):
        assert validate_record(row, OK_FILES[name]) == [], f"{name}.jsonl:{line}"


def test_details_name_the_message_and_key() -> None:
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "weight": 2}]}
    assert validate_record(row) == [Problem("invalid_weight", "messages[1].weight: 2 is not the integer 0 or 1")]


def test_a_row_reports_every_problem_in_order() -> None:
    row = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "", "weight": 1},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                  "function": {"name": "f", "arguments": "[1]"}}]},
            {"role": "user", "content": "and?"},
        ],
        "extra": True,
    }
    assert [p.reason for p in validate_record(row)] == [
        "unknown_key",
        "invalid_role",
        "weight_on_non_assistant",
        "empty_content",
        "invalid_tool_arguments",
        "missing_tool_reply",
        "last_message_not_assistant",
    ]


def test_developer_role_gets_a_hint_and_function_role_is_deprecated() -> None:
    dev = validate_record({"messages": [{"role": "developer", "content": "x"}, {"role": "assistant", "content": "y"}]})
    assert dev[0].reason == "invalid_role" and "use 'system'" in dev[0].detail
    legacy = {"messages": [{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "1"},
                           {"role": "assistant", "content": "y"}]}
    assert [p.reason for p in validate_record(legacy)] == ["deprecated_function_calling"]
    assert [p.reason for p in validate_record({"messages": [{"role": "user", "content": "x"},
                                                            {"role": "assistant", "content": "y"}],
                                               "functions": []})] == ["deprecated_function_calling"]


def test_weight_must_be_an_integer_not_a_boolean_or_float() -> None:
    for weight in (True, 1.0, "1", None):
        row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": weight}]}
        assert [p.reason for p in validate_record(row)] == ["invalid_weight"], weight


def test_assistant_with_tool_calls_needs_no_content_but_plain_assistant_does() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    for content in (None, "", "   "):
        row = {"messages": [{"role": "user", "content": "q"},
                            {"role": "assistant", "content": content, "tool_calls": calls}]}
        assert validate_record(row) == [], content
    no_key = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": calls}]}
    assert validate_record(no_key) == []
    missing = validate_record({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]})
    assert missing == [Problem("missing_content", "messages[1].content: missing (null is allowed only with tool_calls)")]


def test_tool_replies_must_follow_their_call_directly() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    row = {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "still there?"},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "assistant", "content": "a"},
    ]}
    assert [p.reason for p in validate_record(row)] == ["missing_tool_reply", "duplicate_tool_reply"]


def test_a_reply_before_its_call_is_unmatched() -> None:
    row = {"messages": [
        {"role": "user", "content": "q"},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "assistant", "content": "a"},
    ]}
    problems = validate_record(row)
    assert problems == [Problem("unmatched_tool_reply", "messages[1]: tool_call_id 'c1' matches no earlier tool call")]


def test_unanswered_calls_before_a_trailing_tool_message() -> None:
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": calls},
                        {"role": "tool", "tool_call_id": "c1", "content": "1"}]}
    assert [p.reason for p in validate_record(row)] == ["missing_tool_reply", "last_message_not_assistant"]


def test_image_parts_only_on_user_messages() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    row = {"messages": [{"role": "user", "content": [image]},
                        {"role": "assistant", "content": [image, {"type": "text", "text": "a"}]}]}
    problems = validate_record(row)
    assert problems == [Problem("invalid_content_part", "messages[1].content[0]: images are allowed only in user messages")]


def test_preference_input_may_end_with_a_user_message_and_outputs_are_checked_as_messages() -> None:
    row = rows_of("preference_ok")[0]
    assert validate_record(row, "preference") == []
    row["preferred_output"] = [{"role": "assistant", "content": "  "}]
    assert [p.reason for p in validate_record(row, "preference")] == ["empty_content"]
    row["preferred_output"] = [{"role": "user", "content": "Yes."}]
    assert [p.reason for p in validate_record(row, "preference")] == ["invalid_output"]


def test_preference_output_tool_calls_are_checked_against_input_tools() -> None:
    row = rows_of("preference_ok")[1]
    row["preferred_output"] = [{"role": "assistant", "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "refund", "arguments": "{}"}}]}]
    assert [p.reason for p in validate_record(row, "preference")] == ["undefined_tool"]


def test_chat_rule_applied_to_a_preference_row_and_back() -> None:
    pref = rows_of("preference_ok")[0]
    assert [p.reason for p in validate_record(pref, "chat")][:2] == ["unknown_key", "unknown_key"]
    assert validate_record({"messages": []}, "dpo") == [Problem("unknown_kind", "row kind 'dpo' is not one of chat, preference")]


def test_long_values_are_shortened_in_details() -> None:
    row = {"messages": [{"role": "x" * 10_000, "content": "q"}, {"role": "assistant", "content": "a"}]}
    (problem,) = validate_record(row)
    assert problem.reason == "invalid_role" and len(problem.detail) < 200


def frame_of(records: list[str | None], kinds: list[str] | None = None) -> Any:
    return F.make_frame(
        {F.RECORD: r, F.SOURCE: "t.jsonl", F.LINE: i + 1, F.KIND: (kinds or ["chat"] * len(records))[i],
         F.ID: f"id{i}"}
        for i, r in enumerate(records)
    )


def test_validate_stage_rejects_with_first_reason_and_all_details() -> None:
    ok = json.dumps(rows_of("chat_ok")[2])
    bad = json.dumps({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "user", "content": "r"}]})
    pref = json.dumps(rows_of("preference_ok")[0])
    frame = frame_of([ok, bad, "{not json", pref], ["chat", "chat", "chat", "preference"])
    result = validate.STAGE.run(frame, validate.ValidateConfig(), Context())
    assert result.kept.get_column(F.LINE).to_list() == [1, 4]
    rejected = result.rejected
    assert rejected.get_column(F.LINE).to_list() == [2, 3]
    assert rejected.get_column(F.STAGE).to_list() == ["validate", "validate"]
    assert rejected.get_column(F.REASON).to_list() == ["weight_on_non_assistant", "invalid_json"]
    assert rejected.get_column(F.DETAIL)[0] == (
        "weight_on_non_assistant: messages[0].weight: only assistant messages take a weight; "
        "missing_assistant_message: messages: no assistant message to train on"
    )
    assert result.stats == {"problems_by_reason": {"invalid_json": 1, "missing_assistant_message": 1,
                                                   "weight_on_non_assistant": 1}}


def test_validate_stage_reports_a_missing_record() -> None:
    frame = frame_of([None])
    result = validate.STAGE.run(frame, validate.ValidateConfig(), Context())
    assert result.rejected.get_column(F.REASON).to_list() == ["missing_record"]
    assert len(result.kept) == 0


def test_validate_stage_keeps_a_clean_frame_as_is() -> None:
    frame = frame_of([json.dumps(r) for r in rows_of("chat_ok")])
    result = validate.STAGE.run(frame, validate.ValidateConfig(), Context())
    assert result.kept is frame and len(result.rejected) == 0
    assert result.stats == {"problems_by_reason": {}}
