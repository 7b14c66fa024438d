"""Preflight (`--dry-run`): truncation, fully masked and unrenderable examples counted on crafted rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from lora_testdata import write_version

from ftdata.store import Store
from ftdata_lora.plugin import train_command
from ftdata_lora.preflight import preflight_split
from ftdata_lora.templates import training_template

MAX_LENGTH = 48
LONG = " ".join(["word"] * 80)


def chat(user: str, answer: str, weight: int | None = None) -> dict[str, Any]:
    assistant: dict[str, Any] = {"role": "assistant", "content": answer}
    if weight is not None:
        assistant["weight"] = weight
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user}, assistant]}


CRAFTED = [
    chat("Hi", "Hello!"),                                          # line 1: fits
    chat(LONG, "Short answer."),                                   # line 2: prompt alone fills max_length
    chat("Tell me a lot", LONG),                                   # line 3: answer cut by truncation
    chat("Ignore this one", "Not trained.", weight=0),             # line 4: nothing to train
    {"messages": [                                                 # line 5: SmolLM2's template cannot render it
        {"role": "user", "content": "Look up order 7"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."},
    ]},
    chat("Bye", "Goodbye!"),                                       # line 6: fits
]


def test_crafted_rows_are_counted_by_what_truncation_and_weights_do(tokenizer: Any) -> None:
    report = preflight_split("train", CRAFTED, tokenizer, training_template(tokenizer), MAX_LENGTH)
    summary = report.as_dict()

    assert summary["examples"] == 6
    assert summary["over_max_length"] == 2  # lines 2 and 3
    assert summary["trained_tokens_cut"] == 1  # line 3 keeps part of its answer
    assert summary["fully_masked"] == {"truncation_masked": 1, "no_trained_tokens": 1}
    assert report.excluded == {"truncation_masked": [2], "no_trained_tokens": [4], "render_error": [5]}
    assert summary["blocking"] == {"render_error": 1}
    assert summary["problems"][0]["line"] == 5
    assert summary["problems"][0]["detail"].startswith("the chat template cannot render this example: UndefinedError")
    assert summary["trainable_examples"] == 3  # lines 1, 3, 6
    assert summary["tokens"]["max"] > MAX_LENGTH >= summary["tokens"]["min"]
    assert summary["trained_tokens"] == sum(e.trained_within(MAX_LENGTH) for e in report.trainable())


def run_dry(store: Path, *args: str) -> Any:
    return CliRunner().invoke(train_command, ["rows@v1", "--dry-run", *args], obj={"store": Store(store)})


def test_dry_run_reports_json_and_exits_3_on_unrenderable_rows(tmp_path: Path, bundled_model: str) -> None:
    write_version(tmp_path, "rows", "v1", {"train": CRAFTED, "validation": CRAFTED[:1]})

    result = run_dry(tmp_path, "--json", "-o", f"max_length={MAX_LENGTH}")

    assert result.exit_code == 3, result.output
    report = orjson.loads(result.stdout)
    assert report["template"] == "ftdata-chatml" and report["device"]["device"] == "cpu"
    train = report["splits"]["train"]
    assert (train["over_max_length"], train["trained_tokens_cut"]) == (2, 1)
    assert train["fully_masked"] == {"truncation_masked": 1, "no_trained_tokens": 1}
    assert report["splits"]["validation"]["examples"] == 1
    # The example shown is the one with a weight-0 answer: its answer is not trained.
    assert [s["text"] for s in report["example"] if s["trained"]] == []
    assert "Not trained." in "".join(s["text"] for s in report["example"])
    assert "train: 1 row render_error (line 5): the chat template cannot render" in result.stderr
    assert "2 examples train no token and are left out (truncation_masked 1, no_trained_tokens 1)" in result.stderr
    assert not (tmp_path / "runs").exists()  # a dry run writes no run record


def test_dry_run_marks_trained_tokens_in_the_example(tmp_path: Path, bundled_model: str) -> None:
    write_version(tmp_path, "rows", "v1", {"train": [CRAFTED[2]]})

    result = run_dry(tmp_path, "--json", "-o", f"max_length={MAX_LENGTH}")

    assert result.exit_code == 0, result.output
    segments = orjson.loads(result.stdout)["example"]
    trained = [s for s in segments if s["trained"]]
    assert trained[0]["text"].startswith("word word") and not trained[0]["cut"]
    assert trained[-1]["text"].endswith("<|im_end|>") and trained[-1]["cut"]  # the rest of the answer is cut
    assert "⟦word word" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "rank=8"), "error: unknown option 'rank' (known: r, alpha,"),
        (("-o", "lr=fast"), "error: -o lr=fast: Input should be a valid number"),
        (("--qlora",), "error: --qlora loads the base model in 4-bit with bitsandbytes, which needs a CUDA GPU"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    write_version(tmp_path, "rows", "v1", {"train": CRAFTED[:1]})

    result = run_dry(tmp_path, *args)

    assert result.exit_code == 2
    assert result.stderr.startswith(message)


def test_preference_versions_are_refused_with_a_pointer(tmp_path: Path) -> None:
    pair = {"input": {"messages": [{"role": "user", "content": "Hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello"}],
            "non_preferred_output": [{"role": "assistant", "content": "What"}]}
    write_version(tmp_path, "rows", "v1", {"train": [pair]})

    result = run_dry(tmp_path)

    assert result.exit_code == 3
    assert "holds preference rows (prompt/chosen/rejected); LoRA SFT trains on chat rows" in result.stderr
