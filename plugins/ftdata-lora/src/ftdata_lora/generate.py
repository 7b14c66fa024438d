"""Answer prompts with a run's base model + adapter (and, to compare, the base model alone).

Decoding is greedy, so the same run and prompt give the same answer. The adapter directory carries the
tokenizer and the chat template the run trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftdata.models import BUNDLED_NAME, resolve_model
from ftdata.runs import load_run
from ftdata.store import Store, Version

from ftdata_lora.device import detect_machine, plan_device


class GenerateError(RuntimeError):
    """The run cannot answer (no adapter yet, unknown split, ...); the message says why."""


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]  # the conversation up to the answer to generate
    reference: str | None = None  # the answer the dataset holds, for --split


def prompts_from_text(texts: list[str], system: str | None = None) -> list[Prompt]:
    head = [{"role": "system", "content": system}] if system else []
    return [Prompt([*head, {"role": "user", "content": text}]) for text in texts]


def training_system_prompt(store: Store, record: dict[str, Any]) -> str | None:
    """The system message of the run's first train example: what the adapter learned to answer under."""
    version = Version(store.root, record["dataset"], record["version"])
    for row in version.read_split("train"):
        messages = row.get("messages") or []
        if messages and messages[0].get("role") == "system":
            return messages[0].get("content")
        return None
    return None


def prompts_from_split(store: Store, record: dict[str, Any], split: str, limit: int) -> list[Prompt]:
    """Each row's conversation up to its last assistant message, which becomes the reference answer."""
    version = Version(store.root, record["dataset"], record["version"])
    prompts = []
    for row in version.read_split(split):
        messages = row.get("messages") or []
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            continue
        prompts.append(Prompt(messages[:last], messages[last].get("content")))
        if len(prompts) >= limit:
            break
    return prompts


class RunModel:
    """A run's base model with its adapter loaded, on the best device here."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.record = load_run(store, run_id)
        if self.record.get("trainer") != "lora":
            raise GenerateError(f"run {self.record['run_id']} was made by {self.record.get('trainer')!r}, not lora")
        adapter_dir = Path(self.record.get("adapter_dir", ""))
        if not (adapter_dir / "adapter_config.json").exists():
            raise GenerateError(
                f"run {self.record['run_id']} has no adapter yet (status {self.record.get('status')}): "
                f"nothing in {adapter_dir}"
            )
        base = self.record["base_model"]
        base_path = base["path"] if Path(base["path"]).exists() else resolve_model(
            None if base["name"] == BUNDLED_NAME else base["name"]
        )
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        plan = plan_device(detect_machine())
        self.device = plan.device
        self.tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, plan.load_dtype))
        self.model = PeftModel.from_pretrained(model, str(adapter_dir)).to(self.device).eval()

    def answer(self, messages: list[dict[str, Any]], max_new_tokens: int, with_adapter: bool = True) -> str:
        import torch
        from transformers import GenerationConfig

        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        with torch.inference_mode():
            if with_adapter:
                output = self.model.generate(**inputs, generation_config=config)
            else:
                with self.model.disable_adapter():
                    output = self.model.generate(**inputs, generation_config=config)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def generate(store: Store, run_id: str, prompts: list[str] | None = None, split: str | None = None,
             limit: int = 5, compare: bool = False, max_new_tokens: int = 128,
             system: str | None = None) -> list[dict[str, Any]]:
    """Answers for the given prompts, or for the first `limit` conversations of a split of the run's version.

    Prompts go out under `system`; by default under the system message the run's train examples start with
    ("" for none).
    """
    runner = RunModel(store, run_id)
    if split is not None:
        items = prompts_from_split(store, runner.record, split, limit)
        if not items:
            dataset = runner.record["dataset"]
            raise GenerateError(f"split {split!r} of {dataset} has no conversation ending in an answer")
    else:
        if system is None:
            system = training_system_prompt(store, runner.record)
        items = prompts_from_text(list(prompts or []), system)
    results = []
    for item in items:
        user_turns = [m.get("content") for m in item.messages if m.get("role") == "user"]
        result: dict[str, Any] = {
            "prompt": user_turns[-1] if user_turns else "",
            "messages": item.messages,
            "answer": runner.answer(item.messages, max_new_tokens),
        }
        if compare:
            result["base_answer"] = runner.answer(item.messages, max_new_tokens, with_adapter=False)
        if item.reference is not None:
            result["reference"] = item.reference
        results.append(result)
    return results
