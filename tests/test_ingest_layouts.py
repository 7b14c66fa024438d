"""Every input layout maps onto the canonical record; rows that cannot be mapped are rejected with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ftdata import frame as F
from ftdata.ingest import IngestError, IngestOptions, ingest

DATA = Path(__file__).parent / "data" / "ingest"


def kept(result: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(line, json.loads(rec)) for line, rec in result.frame.select(F.LINE, F.RECORD).iter_rows()]


def rejects(result: Any) -> list[tuple[int, str]]:
    return list(result.rejected.select(F.LINE, F.REASON).iter_rows())


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def test_messages_layout_keeps_objects_as_given_and_pops_label() -> None:
    source = DATA / "chat_messages.jsonl"
    result = ingest([source], IngestOptions(label_col="category"))
    records = kept(result)
    assert [line for line, _ in records] == [1, 2, 3]
    first, second, third = (record for _, record in records)
    assert "category" not in first and first["messages"][2]["content"] == "Open Settings → Branding and upload a PNG."
    assert second["tools"][0]["function"]["name"] == "get_invoice"
    assert second["parallel_tool_calls"] is False
    assert second["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_invoice", "arguments": '{"number": "INV-7"}'}}
        ],
    }
    # Validation decides about bad roles, unknown keys and nulls: ingest neither fixes nor drops them.
    assert third == {"messages": [{"role": "narrator", "content": "  keep me as given  "}, assistant("ok")], "extra_key": None}
    assert result.frame.get_column(F.LABEL).to_list() == ["invoicing", "billing", None]
    assert set(result.frame.get_column(F.KIND)) == {"chat"}
    assert result.inputs[0]["layout"] == "messages"


def test_prompt_completion_strings_become_user_and_assistant_messages() -> None:
    result = ingest([DATA / "prompt_completion.jsonl"])
    assert kept(result) == [
        (1, {"messages": [system("Be brief."), user("What does the Pro plan cost?"), assistant("$49 a month.")]}),
        (2, {"messages": [user("Can I pay yearly?"), assistant("Yes, with two months free.")]}),
    ]
    assert rejects(result) == [(3, "missing_column_value"), (4, "invalid_column_type")]
    details = result.rejected.get_column(F.DETAIL).to_list()
    assert details == ["'completion' is missing or null", "'prompt' is a JSON number, not a string or a list of messages"]
    assert result.rejected.get_column(F.RAW).to_list()[0] == '{"prompt": "No answer here"}'


def test_trl_conversational_prompt_completion_lists_are_concatenated() -> None:
    result = ingest([DATA / "trl_conversational.jsonl"])
    assert result.inputs[0]["layout"] == "prompt_completion"
    assert kept(result) == [
        (1, {"messages": [system("Be brief."), user("Refund?"), assistant("Within 30 days, yes.")]}),
        (2, {"messages": [user("Hi"), assistant("Hello!")]}),
    ]


def test_alpaca_joins_instruction_and_input_with_a_blank_line() -> None:
    result = ingest([DATA / "alpaca.json"])
    assert result.inputs[0] | {"sha256": None} == {
        "path": str(DATA / "alpaca.json"),
        "sha256": None,
        "bytes": (DATA / "alpaca.json").stat().st_size,
        "rows": 4,
        "format": "json",
        "layout": "alpaca",
    }
    assert kept(result) == [
        (1, {"messages": [user("Summarise the refund policy."), assistant("Full refunds within 30 days.")]}),
        (2, {"messages": [user("Translate to French.\n\nYour invoice is overdue."), assistant("Votre facture est en retard.")]}),
    ]
    assert rejects(result) == [(3, "missing_column_value"), (4, "not_an_object")]
    assert result.rejected.get_column(F.RAW).to_list() == ['{"instruction":"Missing output"}', '"not an object"']


def test_sharegpt_roles_are_mapped_and_unknown_speakers_rejected() -> None:
    result = ingest([DATA / "sharegpt.json"])
    assert kept(result) == [
        (1, {"messages": [system("You are Ledgerly support."), user("Hi"), assistant("Hello! How can I help?")]}),
        (2, {"messages": [user("Reset my password"), assistant("Use the link on the sign-in page.")]}),
    ]
    assert rejects(result) == [(3, "unknown_sharegpt_role"), (4, "invalid_sharegpt_turn")]
    assert result.rejected.get_column(F.DETAIL).to_list() == [
        "conversations[1].from is 'narrator'; known: human, user, gpt, assistant, bot, system",
        "conversations[0].value is a JSON number, not a string",
    ]


def test_preference_rows_keep_their_shape_and_kind() -> None:
    result = ingest([DATA / "preference.jsonl"], IngestOptions(label_col="topic"))
    records = kept(result)
    assert records[0] == (
        1,
        {
            "input": {"messages": [user("Can I get a refund?")]},
            "preferred_output": [assistant("Yes, within 30 days of payment.")],
            "non_preferred_output": [assistant("No.")],
        },
    )
    assert records[1][1]["input"]["tools"][0]["type"] == "function"
    assert result.frame.get_column(F.KIND).to_list() == ["preference", "preference"]
    assert result.frame.get_column(F.LABEL).to_list() == ["billing", "greeting"]


def test_csv_question_answer_columns_are_detected() -> None:
    result = ingest([DATA / "columns.csv"], IngestOptions(label_col="category"))
    assert result.inputs[0]["layout"] == "columns"
    assert kept(result) == [
        (2, {"messages": [user("How do I export invoices?"), assistant("Use Reports → Export.")]}),
        # a quoted field spanning lines: LINE is where the record starts
        (3, {"messages": [user("Can I pay by\nwire transfer?"), assistant("Yes, on annual plans.\nAsk billing.")]}),
        # an empty answer is kept for validation to reject as empty content
        (6, {"messages": [user("What is 2FA?"), assistant("")]}),
    ]
    assert result.frame.get_column(F.LABEL).to_list() == ["invoicing", "billing", "account_security"]


def test_named_columns_map_with_flags_and_tag_label_and_group() -> None:
    options = IngestOptions(user_col="ticket_text", assistant_col="agent_reply", label_col="topic", group_col="customer")
    result = ingest([DATA / "custom_columns.csv"], options)
    assert kept(result)[0] == (
        2,
        {"messages": [user("My card was declined"), assistant("Try another card or contact your bank.")]},
    )
    assert result.frame.select(F.LABEL, F.GROUP).rows() == [("billing", "acme"), ("account", "acme")]


def test_system_column_prepends_a_system_message_unless_empty(tmp_path: Path) -> None:
    path = tmp_path / "with_system.csv"
    path.write_text("persona,q,a\nBe terse.,Hi?,Hello.\n,Bye?,Goodbye.\n", encoding="utf-8")
    result = ingest([path], IngestOptions(user_col="q", assistant_col="a", system_col="persona"))
    assert [record for _, record in kept(result)] == [
        {"messages": [system("Be terse."), user("Hi?"), assistant("Hello.")]},
        {"messages": [user("Bye?"), assistant("Goodbye.")]},
    ]


@pytest.mark.parametrize(
    ("header", "layout"),
    [
        ("prompt,response", "columns"),
        ("prompt,completion", "prompt_completion"),
        ("instruction,output", "alpaca"),
        ("input,output", "columns"),
        ("user,assistant", "columns"),
    ],
)
def test_common_column_pairs_are_detected(tmp_path: Path, header: str, layout: str) -> None:
    path = tmp_path / "pair.csv"
    path.write_text(f"{header}\nask,reply\n", encoding="utf-8")
    result = ingest([path])
    assert result.inputs[0]["layout"] == layout
    assert kept(result) == [(2, {"messages": [user("ask"), assistant("reply")]})]


def test_one_named_column_completes_from_a_common_pair(tmp_path: Path) -> None:
    path = tmp_path / "half.csv"
    path.write_text("question,answer,better_answer\nQ,A,B\n", encoding="utf-8")
    result = ingest([path], IngestOptions(assistant_col="better_answer"))
    assert kept(result) == [(2, {"messages": [user("Q"), assistant("B")]})]


def test_forced_layout_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "forced.jsonl"
    path.write_text('{"question": "Q", "answer": "A"}\n', encoding="utf-8")
    result = ingest([path], IngestOptions(layout="messages"))
    assert kept(result) == [(1, {"question": "Q", "answer": "A"})]  # validation will say what is wrong


def test_undetectable_csv_names_the_file_its_columns_and_the_flags() -> None:
    source = DATA / "undetectable.csv"
    with pytest.raises(IngestError) as error:
        ingest([source])
    message = str(error.value)
    assert message.startswith(f"{source}: cannot detect the layout; columns seen: ticket_text, agent_reply, category.")
    assert "`--user-col ticket_text --assistant-col agent_reply --label-col category`" in message
    assert "--layout messages|prompt_completion|alpaca|sharegpt|preference" in message


def test_undetectable_jsonl_lists_the_keys_it_saw() -> None:
    with pytest.raises(IngestError, match=r"undetectable.jsonl: cannot detect the layout; keys seen: text, reply\."):
        ingest([DATA / "undetectable.jsonl"])


def test_the_suggested_flags_do_map_the_file() -> None:
    options = IngestOptions(user_col="ticket_text", assistant_col="agent_reply", label_col="category")
    result = ingest([DATA / "undetectable.csv"], options)
    assert kept(result) == [(2, {"messages": [user("hello"), assistant("hi")]})]


def test_a_flag_naming_a_missing_column_is_a_file_error() -> None:
    with pytest.raises(IngestError, match=r"columns.csv: no such column for --label-col 'topic'; the columns are: "):
        ingest([DATA / "columns.csv"], IngestOptions(label_col="topic"))


def test_column_flags_do_not_apply_to_the_messages_layout() -> None:
    with pytest.raises(IngestError, match="--system-col do not apply to the messages layout"):
        ingest([DATA / "chat_messages.jsonl"], IngestOptions(system_col="persona"))


def test_label_values_that_are_not_strings_are_stringified(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [{"prompt": "a", "completion": "b", "tier": value} for value in (3, True, ["x"], "", None)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = ingest([path], IngestOptions(label_col="tier"))
    assert result.frame.get_column(F.LABEL).to_list() == ["3", "true", '["x"]', None, None]


def test_parquet_rows_map_and_struct_nulls_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "chat.parquet"
    message = pl.Struct({"role": pl.String(), "content": pl.String(), "tool_call_id": pl.String()})
    pl.DataFrame(
        {
            "messages": [
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
                [{"role": "tool", "content": None, "tool_call_id": "c1"}],
            ],
            "category": ["greeting", None],
        },
        schema={"messages": pl.List(message), "category": pl.String()},
    ).write_parquet(path)
    result = ingest([path], IngestOptions(label_col="category"))
    assert result.inputs[0]["format"] == "parquet" and result.inputs[0]["rows"] == 2
    assert kept(result) == [
        (1, {"messages": [user("Hi"), assistant("Hey")]}),
        (2, {"messages": [{"role": "tool", "content": None, "tool_call_id": "c1"}]}),
    ]
    assert result.frame.get_column(F.LABEL).to_list() == ["greeting", None]


def test_parquet_question_answer_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.parquet"
    pl.DataFrame({"question": ["Q1", None], "answer": ["A1", "A2"]}).write_parquet(path)
    result = ingest([path])
    assert kept(result) == [(1, {"messages": [user("Q1"), assistant("A1")]})]
    assert rejects(result) == [(2, "missing_column_value")]
