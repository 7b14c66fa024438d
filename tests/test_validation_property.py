"""Arbitrary JSON through the rules and the stages: no crash, every row kept or rejected."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages import normalize, validate
from ftdata.validation import Problem, validate_record

SNAKE = re.compile(r"[a-z]+(_[a-z]+)*")

# Keys and values the rules look at, so the generator often builds near-valid messages and reaches deep
# branches (tool calls, replies, weights) instead of failing at the top level every time.
KEYS = st.sampled_from(["messages", "role", "content", "tool_calls", "tool_call_id", "weight", "name", "id",
                        "type", "function", "arguments", "tools", "parameters", "input", "preferred_output",
                        "non_preferred_output", "text", "image_url", "url", "refusal", "parallel_tool_calls"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["system", "user", "assistant", "tool", "function", "developer", "text", "c1", "{}", "[1]",
                       "", "  ", "{\"a\": 1}", "cafe\u0301 "])
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5),
    max_leaves=40,
)
CALL = st.fixed_dictionaries(
    {"id": st.sampled_from(["c1", "c2"]), "type": st.just("function"),
     "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"]),
                                        "arguments": st.sampled_from(["{}", "[1]", "{\"a\": 1}", "x"])})}
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"])},
    optional={"content": SCALARS | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": SCALARS})),
              "weight": st.sampled_from([0, 1, 2, True]), "tool_calls": st.lists(CALL, max_size=2),
              "tool_call_id": st.sampled_from(["c1", "c2", "c3"]), "name": SCALARS},
)
CHAT = st.fixed_dictionaries({"messages": st.lists(MESSAGE | JSON, max_size=6)},
                             optional={"tools": JSON, "parallel_tool_calls": SCALARS})
PREFERENCE = st.fixed_dictionaries({"input": st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=4)}),
                                    "preferred_output": st.lists(MESSAGE, max_size=2),
                                    "non_preferred_output": st.lists(MESSAGE, max_size=2)})
TURN = st.text(min_size=1, max_size=10).filter(str.strip)
VALID_CHAT = st.lists(st.tuples(TURN, TURN), min_size=1, max_size=3).map(
    lambda turns: {"messages": [{"role": role, "content": text} for pair in turns
                                for role, text in zip(("user", "assistant"), pair, strict=True)]}
)
EXAMPLES = JSON | CHAT | PREFERENCE | VALID_CHAT


def assert_problems(problems: Any) -> None:
    assert isinstance(problems, list)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert SNAKE.fullmatch(problem.reason), problem.reason
        assert isinstance(problem.detail, str) and problem.detail


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXAMPLES, st.sampled_from(["chat", "preference"]))
def test_validate_record_never_raises(obj: Any, kind: str) -> None:
    assert_problems(validate_record(obj, kind))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(EXAMPLES, st.sampled_from(["chat", "preference"])), min_size=1, max_size=8))
def test_every_row_is_kept_or_rejected_through_normalize_and_validate(rows: list[tuple[Any, str]]) -> None:
    frame = F.make_frame(
        {F.RECORD: F.canonical_json(obj), F.KIND: kind, F.SOURCE: "p.jsonl", F.LINE: i + 1}
        for i, (obj, kind) in enumerate(rows)
    )
    normalized = normalize.STAGE.run(frame, normalize.NormalizeConfig(system="S"), Context())
    assert len(normalized.kept) == len(rows) and len(normalized.rejected) == 0
    result = validate.STAGE.run(normalized.kept, validate.ValidateConfig(), Context())
    lines = sorted(result.kept.get_column(F.LINE).to_list() + result.rejected.get_column(F.LINE).to_list())
    assert lines == list(range(1, len(rows) + 1))
    for reason in result.rejected.get_column(F.REASON):
        assert SNAKE.fullmatch(reason)
    # What validate keeps, the rules accept.
    for record, kind in zip(F.records(result.kept), result.kept.get_column(F.KIND), strict=True):
        assert validate_record(record, kind) == []
