"""The adapter's model card: peft's metadata header kept, a lineage table naming the exact version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftdata_lora.outputs import LINEAGE_HEADING, library_versions, write_model_card

PEFT_CARD = """---
base_model: /models/SmolLM2
library_name: peft
tags:
- lora
---

# Model Card for Model ID

- **Developed by:** [More Information Needed]
"""
SPLITS = {
    "train": {"path": "train.jsonl", "sha256": "a" * 64, "bytes": 10, "rows": 26},
    "validation": {"path": "validation.jsonl", "sha256": "b" * 64, "bytes": 5, "rows": 6},
}


def record() -> dict[str, Any]:
    return {
        "run_id": "lora-support-v1-20260101-000000-abcd",
        "dataset": "support",
        "version": "v1",
        "manifest_sha256": "c" * 64,
        "base_model": {"name": "SmolLM2-135M-Instruct", "path": "/models/SmolLM2"},
        "device": {"description": "LoRA on cpu, fp32"},
        "template": "ftdata-chatml",
        "options": {"r": 8, "lr": 0.002, "eval_steps": None},
        "library_versions": {"trl": "1.16.0"},
        "metrics": {"initial_eval_loss": 4.8561, "final_eval_loss": 1.9774},
    }


def test_card_keeps_peft_header_and_names_the_version_by_hash(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(PEFT_CARD, encoding="utf-8")

    card = write_model_card(tmp_path, record(), SPLITS).read_text(encoding="utf-8")

    header = "---\nbase_model: /models/SmolLM2\nlibrary_name: peft\ntags:\n- lora\n---\n\n"
    assert card.startswith(header + "# LoRA adapter: support@v1 on SmolLM2-135M-Instruct\n")
    assert "More Information Needed" not in card
    assert f"| manifest sha256 | `{'c' * 64}` |" in card
    assert f"| train.jsonl sha256 | `{'a' * 64}` (26 rows) |" in card
    assert f"| validation.jsonl sha256 | `{'b' * 64}` (6 rows) |" in card
    assert "| options | lr=0.002, r=8 |" in card
    assert "| validation loss | 4.8561 → 1.9774 |" in card
    assert card.count(LINEAGE_HEADING) == 1
    assert write_model_card(tmp_path, record(), SPLITS).read_text(encoding="utf-8") == card


def test_library_versions_name_the_training_stack() -> None:
    versions = library_versions()

    assert {"python", "ftdata", "ftdata-lora", "torch", "transformers", "trl", "peft", "datasets"} <= set(versions)
