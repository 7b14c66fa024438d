"""Train the bundled SmolLM2-135M on CPU for a few steps through `ftdata train lora`, resume it, generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from lora_testdata import SYSTEM

from ftdata.runs import load_run
from ftdata.store import MANIFEST, Store, sha256_file

pytestmark = pytest.mark.slow

# A high learning rate and batches of two so that three steps already move the validation loss clearly
# (4.86 → 1.98 here) while keeping the test short on a busy CPU; one torch thread for the same reason.
FAST = ("-o", "cpu_threads=1", "-o", "r=8", "-o", "lr=2e-3", "-o", "max_length=96", "-o", "batch_size=2",
        "-o", "epochs=1")


def ftdata(*args: str) -> Result:
    from ftdata.cli import cli

    return CliRunner().invoke(cli, list(args), obj={})


def test_train_resume_merge_and_generate(support_store: Store, bundled_model: str) -> None:
    store = str(support_store.root)

    first = ftdata("train", "lora", "support@v1", "--store", store, *FAST, "--max-steps", "3", "--json")

    assert first.exit_code == 0, first.output
    record = orjson.loads(first.stdout)
    metrics = record["metrics"]
    assert record["status"] == "succeeded" and metrics["global_step"] == 3
    assert [e["step"] for e in metrics["eval_loss"]] == [0, 3]
    assert metrics["final_eval_loss"] < 0.7 * metrics["initial_eval_loss"]
    assert metrics["seconds_per_step"] > 0 and metrics["tokens_per_second"] > 0 and metrics["peak_rss_bytes"] > 2**27
    assert record["device"]["description"] == "LoRA on cpu, fp32" and record["template"] == "ftdata-chatml"
    assert record["preflight"]["train"]["trainable_examples"] == 26
    assert {"torch", "transformers", "trl", "peft", "ftdata", "ftdata-lora"} <= set(record["library_versions"])
    assert record == load_run(support_store, record["run_id"])

    version_dir = support_store.root / "support" / "v1"
    assert record["manifest_sha256"] == sha256_file(version_dir / MANIFEST)
    assert record["split_sha256"]["train"] == sha256_file(version_dir / "train.jsonl")
    adapter = Path(record["adapter_dir"])
    assert adapter == support_store.root / "runs" / record["run_id"] / "adapter"
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in adapter.iterdir()
    }
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert "## Training data (ftdata lineage)" in card
    assert f"| manifest sha256 | `{record['manifest_sha256']}` |" in card
    assert f"| train.jsonl sha256 | `{record['split_sha256']['train']}` (26 rows) |" in card

    listed = ftdata("runs", "--store", store)
    assert listed.exit_code == 0 and record["run_id"] in listed.stdout

    resumed = ftdata("train", "lora", "support@v1", "--store", store, "--resume", "--max-steps", "4", "--merge", "--json")

    assert resumed.exit_code == 0, resumed.output
    again = orjson.loads(resumed.stdout)
    assert again["run_id"] == record["run_id"]
    assert again["resumed_from"] == [str(Path(record["output_dir"]) / "checkpoints" / "checkpoint-3")]
    assert again["metrics"]["global_step"] == 4 and again["metrics"]["steps_this_session"] == 1
    assert [e["step"] for e in again["metrics"]["train_loss"]] == [1, 2, 3, 4]
    assert again["options"] == record["options"] and again["options"]["cpu_threads"] == 1
    merged = Path(again["merged_dir"])
    assert (merged / "model.safetensors").exists() and (merged / "config.json").exists()

    done = ftdata("train", "lora", "support@v1", "--store", store, "--resume", "--max-steps", "4")
    assert done.exit_code == 1
    assert done.stderr == (
        f"error: run {record['run_id']} already trained 4 steps: pass a larger --max-steps to continue it\n"
    )

    answers = generate(store, again["run_id"], "How do I track my order?", "--compare")
    assert set(answers[0]) == {"prompt", "messages", "answer", "base_answer"}
    assert answers[0]["prompt"] == "How do I track my order?" and answers[0]["answer"]
    assert answers[0]["messages"][0] == {"role": "system", "content": SYSTEM}  # the training system prompt

    from_split = generate(store, again["run_id"], "--split", "validation", "--limit", "2")
    validation = Store(store).resolve("support@v1").read_split("validation")
    assert [a["reference"] for a in from_split] == [row["messages"][-1]["content"] for row in validation[:2]]
    assert from_split[0]["messages"] == validation[0]["messages"][:-1]


def generate(store: str, run_id: str, *args: str) -> list[dict[str, Any]]:
    result = ftdata("generate", run_id, *args, "--store", store, "--max-new-tokens", "16", "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)

