"""What a finished run leaves behind besides the adapter: the model card's lineage entry and the merge."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("ftdata", "ftdata-lora", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes")
LINEAGE_HEADING = "## Training data (ftdata lineage)"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def lineage_section(record: dict[str, Any], splits: dict[str, dict[str, Any]]) -> str:
    """Markdown naming the exact dataset version (by hashes), base model, run and options."""
    metrics = record.get("metrics", {})
    rows = [
        ("dataset", f"`{record['dataset']}@{record['version']}`"),
        ("manifest sha256", f"`{record['manifest_sha256']}`"),
    ]
    for name, entry in splits.items():
        rows.append((f"{entry['path']} sha256", f"`{entry['sha256']}` ({entry.get('rows', '?')} rows)"))
    rows += [
        ("base model", f"`{record['base_model']['name']}` ({record['base_model']['path']})"),
        ("run", f"`{record['run_id']}`"),
        ("trained with", f"{record['device']['description']}; chat template: {record['template']}"),
        ("options", ", ".join(f"{k}={v}" for k, v in sorted(record["options"].items()) if v is not None)),
        ("libraries", ", ".join(f"{k} {v}" for k, v in record["library_versions"].items())),
    ]
    if metrics.get("initial_eval_loss") is not None:
        rows.append(("validation loss", f"{metrics['initial_eval_loss']:.4f} → {metrics['final_eval_loss']:.4f}"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"{LINEAGE_HEADING}\n\nThis adapter was trained by `ftdata train lora` on the dataset version below; "
        "`ftdata verify` re-checks the hashes and `ftdata runs show "
        f"{record['run_id']}` prints the full run record.\n\n| | |\n|---|---|\n{table}\n"
    )


def write_model_card(adapter_dir: Path, record: dict[str, Any], splits: dict[str, dict[str, Any]]) -> Path:
    """README.md for the adapter: peft's metadata header (base model, library, tags), usage, and the lineage.

    peft writes a model card that is a blank template; its YAML header is kept, its body replaced.
    """
    card = adapter_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    header = ""
    if text.startswith("---\n") and (end := text.find("\n---\n", 4)) != -1:
        header = text[: end + 5] + "\n"
    body = (
        f"# LoRA adapter: {record['dataset']}@{record['version'][:12]} on {record['base_model']['name']}\n\n"
        f"Try it with `ftdata generate {record['run_id']} \"your question\"` (add `--compare` to see the base "
        "model's answer), or load it with peft:\n\n"
        "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"base = AutoModelForCausalLM.from_pretrained({record['base_model']['path']!r})\n"
        f"model = PeftModel.from_pretrained(base, {str(adapter_dir)!r})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(adapter_dir)!r})\n```\n\n"
    )
    card.write_text(header + body + lineage_section(record, splits), encoding="utf-8")
    return card


def merge_adapter(base_path: str, adapter_dir: Path, merged_dir: Path) -> Path:
    """Fold the adapter into an unquantised copy of the base (in the base's own dtype) and save it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(merged_dir)
    return merged_dir
