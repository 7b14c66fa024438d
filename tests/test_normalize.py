"""normalize: NFC, trimmed text, a default system prompt only where a row has none."""

from __future__ import annotations

import json
from typing import Any

import click
import orjson
import pytest

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages import normalize
from ftdata.stages.normalize import NormalizeConfig, normalize_record

DECOMPOSED = "cafe\u0301"  # "café" with a combining acute accent
COMPOSED = "caf\u00e9"


def frame_of(records: list[Any], kinds: list[str] | None = None) -> Any:
    return F.make_frame(
        {F.RECORD: r if isinstance(r, str) else F.canonical_json(r), F.SOURCE: "t.jsonl", F.LINE: i + 1,
         F.KIND: (kinds or ["chat"] * len(records))[i]}
        for i, r in enumerate(records)
    )


def run(records: list[Any], config: NormalizeConfig | None = None, kinds: list[str] | None = None) -> Any:
    return normalize.STAGE.run(frame_of(records, kinds), config or NormalizeConfig(), Context())


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


def test_nfc_and_trim_every_text_content_but_not_tool_arguments_or_names() -> None:
    arguments = '{"city": " Montre\u0301al "}'
    row = chat(
        {"role": "user", "content": f"  I want a {DECOMPOSED}\n", "name": " ana "},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "find", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f" {DECOMPOSED} found \t"},
        {"role": "assistant", "content": [{"type": "text", "text": f" Your {DECOMPOSED} is ready. "}]},
    )
    result = run([row])
    (record,) = F.records(result.kept)
    messages = record["messages"]
    assert messages[0]["content"] == f"I want a {COMPOSED}"
    assert messages[0]["name"] == " ana "
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == arguments
    assert messages[2]["content"] == f"{COMPOSED} found"
    assert messages[3]["content"] == [{"type": "text", "text": f"Your {COMPOSED} is ready."}]
    assert result.stats == {"rows_changed": 1, "system_added": 0}
    assert result.kept.get_column(F.ID)[0] == F.row_id(result.kept.get_column(F.RECORD)[0])


def test_nfc_and_strip_can_be_turned_off() -> None:
    row = chat({"role": "user", "content": f" {DECOMPOSED} "}, {"role": "assistant", "content": "ok"})
    (record,) = F.records(run([row], NormalizeConfig(nfc=False)).kept)
    assert record["messages"][0]["content"] == DECOMPOSED
    (record,) = F.records(run([row], NormalizeConfig(strip=False)).kept)
    assert record["messages"][0]["content"] == f" {COMPOSED} "


def test_system_prompt_added_only_where_missing() -> None:
    has_system = chat({"role": "system", "content": "Keep it short."}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a"})
    lacks_system = chat({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})
    result = run([has_system, lacks_system], NormalizeConfig(system="  You are a support agent. "))
    first, second = F.records(result.kept)
    assert first == has_system
    assert second["messages"][0] == {"role": "system", "content": "You are a support agent."}
    assert second["messages"][1:] == lacks_system["messages"]
    assert result.stats == {"rows_changed": 1, "system_added": 1}


def test_system_prompt_goes_into_the_preference_input() -> None:
    row = {"input": {"messages": [{"role": "user", "content": "q "}]},
           "preferred_output": [{"role": "assistant", "content": " good"}],
           "non_preferred_output": [{"role": "assistant", "content": "bad "}]}
    (record,) = F.records(run([row], NormalizeConfig(system="Be kind."), ["preference"]).kept)
    assert record == {"input": {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "q"}]},
                      "preferred_output": [{"role": "assistant", "content": "good"}],
                      "non_preferred_output": [{"role": "assistant", "content": "bad"}]}


def test_unchanged_frame_is_returned_as_is() -> None:
    frame = frame_of([chat({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})])
    result = normalize.STAGE.run(frame, NormalizeConfig(), Context())
    assert result.kept is frame
    assert result.stats == {"rows_changed": 0, "system_added": 0}


def test_malformed_rows_are_kept_untouched_for_validate_to_report() -> None:
    records = ["{not json", '"just a string"', '{"messages":{"role":"user"}}', '{"messages":[1,{"content":7}]}',
               F.canonical_json(chat({"role": "user", "content": " q "}))]
    result = run(records)
    assert len(result.kept) == 5 and len(result.rejected) == 0
    assert result.kept.get_column(F.RECORD).to_list()[:4] == records[:4]
    assert result.kept.get_column(F.RECORD)[4] == '{"messages":[{"content":"q","role":"user"}]}'


def test_normalize_record_is_usable_on_its_own() -> None:
    record, changed, added = normalize_record(chat({"role": "user", "content": "q"}), "chat", NormalizeConfig(system="S"))
    assert (changed, added) == (True, True)
    assert record["messages"][0] == {"role": "system", "content": "S"}
    assert normalize_record([1, 2], "chat", NormalizeConfig(system="S")) == ([1, 2], False, False)


def test_config_from_cli_is_always_on(tmp_path: Any) -> None:
    assert normalize.STAGE.config_from_cli({}) == NormalizeConfig()
    assert normalize.STAGE.config_from_cli({"normalize_system": "Hi"}) == NormalizeConfig(system="Hi")
    prompt = tmp_path / "system.txt"
    prompt.write_text("\ufeffFrom a file\n", encoding="utf-8")
    assert normalize.STAGE.config_from_cli({"normalize_system_file": str(prompt)}).system == "From a file\n"
    with pytest.raises(click.UsageError):
        normalize.STAGE.config_from_cli({"normalize_system": "a", "normalize_system_file": str(prompt)})


def test_cli_options_parse_into_the_config() -> None:
    command = click.Command("curate", params=list(normalize.STAGE.cli_options), callback=lambda **kw: kw)
    params = command.main(["--system", "Be brief."], standalone_mode=False)
    assert normalize.STAGE.config_from_cli(params) == NormalizeConfig(system="Be brief.")


def test_records_stay_canonical_json() -> None:
    result = run([chat({"role": "user", "content": " q"}, {"role": "assistant", "content": "a"}, weight_note=None)])
    text = result.kept.get_column(F.RECORD)[0]
    assert text == F.canonical_json(orjson.loads(text))
    assert json.loads(text)["messages"][0]["content"] == "q"
