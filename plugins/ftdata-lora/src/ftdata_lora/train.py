"""Train a LoRA adapter on a dataset version with TRL's SFTTrainer and peft, and record the run.

Layout of a run's output directory (default `<store>/runs/<run-id>/`, or `--output`):
    adapter/       adapter_model.safetensors, adapter_config.json, tokenizer, README.md (lineage)
    checkpoints/   checkpoint-<step>/ (the newest `save_total_limit`, plus the best by eval loss)
    merged/        with --merge: the adapter folded into an unquantised copy of the base
The run record is `<store>/runs/<run-id>.json` (ftdata.runs), updated as training goes.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ftdata.models import BUNDLED_NAME, resolve_model
from ftdata.runs import list_runs, load_run, new_run, runs_dir, write_run
from ftdata.store import Store, Version, parse_ref

from ftdata_lora.callbacks import RunCallback
from ftdata_lora.device import DevicePlan, Machine, detect_machine, plan_device
from ftdata_lora.encoding import Encoded
from ftdata_lora.options import LoraOptions, parse_options
from ftdata_lora.outputs import library_versions, merge_adapter, write_model_card
from ftdata_lora.preflight import Preflight, run_preflight
from ftdata_lora.templates import TrainingTemplate, training_template

TRAINER = "lora"


class LoraError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class DataProblem(LoraError):
    """The version holds rows training cannot use as they are (exit code 3)."""


@dataclass(frozen=True)
class TrainRequest:
    ref: str
    store: Store
    option_pairs: tuple[str, ...] = ()
    base_model: str | None = None
    qlora: bool = False
    merge: bool = False
    resume: bool = False
    resume_from: str | None = None  # a run id; implies resume
    output: Path | None = None
    max_steps: int | None = None


@dataclass
class Prepared:
    version: Version
    options: LoraOptions
    base_name: str
    base_path: str
    plan: DevicePlan
    tokenizer: Any
    template: TrainingTemplate
    preflight: Preflight
    resumed: dict[str, Any] | None = None  # the run record being resumed


def prepare(request: TrainRequest, machine: Machine | None = None) -> Prepared:
    """Everything short of loading the model: options, device plan, template, tokenized splits, preflight."""
    from transformers import AutoTokenizer

    from ftdata.hf import version_dataset_dict

    resumed = find_resumable(request) if request.resume or request.resume_from else None
    if resumed:
        version = Version(request.store.root, resumed["dataset"], resumed["version"])
        recorded_base = resumed["base_model"]["name"]
        if request.base_model and request.base_model != recorded_base:
            raise LoraError(f"run {resumed['run_id']} trains an adapter for {recorded_base!r}; drop --base-model")
    else:
        version = request.store.resolve(request.ref)
    options = parse_options(request.option_pairs, base=resumed["options"] if resumed else None)
    base_name = request.base_model or (resumed["base_model"]["name"] if resumed else BUNDLED_NAME)
    base_path = resolve_model(None if base_name == BUNDLED_NAME else base_name)
    qlora = request.qlora or bool(resumed and resumed.get("qlora"))
    plan = plan_device(machine or detect_machine(), options.precision, qlora, options.gradient_checkpointing)

    dataset_dict = version_dataset_dict(version)
    if "train" not in dataset_dict:
        raise DataProblem(f"{version.ref} has no train split (splits: {', '.join(dataset_dict) or 'none'})")
    if "messages" not in dataset_dict["train"].column_names:
        raise DataProblem(
            f"{version.ref} holds preference rows (prompt/chosen/rejected); LoRA SFT trains on chat rows "
            "(messages). Use ftdata.load_hf() with TRL's DPOTrainer for preference data."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_path)
    except OSError as exc:
        raise LoraError(f"cannot load the tokenizer of base model {base_name!r}: {exc}") from None
    template = training_template(tokenizer, options.chat_template)
    tokenizer.chat_template = template.text  # saved with the adapter: inference renders as training did
    preflight = run_preflight(dataset_dict, tokenizer, template, options.max_length)
    return Prepared(version, options, base_name, base_path, plan, tokenizer, template, preflight, resumed)


def find_resumable(request: TrainRequest) -> dict[str, Any]:
    """The run record `--resume` continues: the one named, or the newest of this version with a checkpoint."""
    dataset, version_prefix = parse_ref(request.ref)
    if request.resume_from:
        record = load_run(request.store, request.resume_from)
        if record["trainer"] != TRAINER:
            raise LoraError(f"run {record['run_id']} was made by the {record['trainer']!r} trainer, not {TRAINER!r}")
        same_version = version_prefix == "latest" or record["version"].startswith(version_prefix)
        if record["dataset"] != dataset or not same_version:
            raise LoraError(
                f"run {record['run_id']} trained {record['dataset']}@{record['version']}, not {request.ref}"
            )
        return record
    version = request.store.resolve(request.ref)
    candidates = [
        r for r in list_runs(request.store, dataset, version.version)
        if r["trainer"] == TRAINER and last_checkpoint(Path(r.get("output_dir", ""))) is not None
    ]
    if not candidates:
        raise LoraError(f"no {TRAINER} run of {version.ref} has a checkpoint to resume; start one without --resume")
    return candidates[-1]


def last_checkpoint(output_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = output_dir / "checkpoints"
    found = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    return Path(found) if found else None


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was saved at (from the Trainer's trainer_state.json)."""
    return int(orjson.loads((checkpoint / "trainer_state.json").read_bytes())["global_step"])


def train(request: TrainRequest, say: Callable[[str], None] = lambda _: None,
          machine: Machine | None = None) -> dict[str, Any]:
    """Run (or resume) a LoRA fine-tune; returns the final run record."""
    prepared = prepare(request, machine)
    problems = prepared.preflight.blocking_problems()
    if problems:
        raise DataProblem("rows training cannot use as they are:\n  " + "\n  ".join(problems))
    splits = prepared.preflight.splits
    train_rows = splits["train"].trainable()
    eval_rows = splits["validation"].trainable() if "validation" in splits else []
    if not train_rows:
        raise DataProblem(f"{prepared.version.ref}: no train example has a trained token within max_length")

    store = request.store
    if world_size() > 1 and not (request.output or prepared.resumed):
        raise LoraError(
            "under accelerate launch every process must write to the same place: pass --output DIR"
        )
    record = prepared.resumed or new_run(store, TRAINER, prepared.version, {})
    if prepared.resumed:
        output_dir = Path(record["output_dir"])
    else:  # absolute, so `ftdata generate` finds the adapter from any directory
        output_dir = (request.output or runs_dir(store) / record["run_id"]).resolve()
    checkpoint = last_checkpoint(output_dir) if prepared.resumed else None
    max_steps = request.max_steps or (record.get("max_steps") if prepared.resumed else None)
    record.update(
        options=prepared.options.model_dump(mode="json"),
        status="running",
        base_model={"name": prepared.base_name, "path": prepared.base_path},
        qlora=prepared.plan.qlora,
        merge=request.merge,
        max_steps=max_steps,
        device=prepared.plan.as_record(),
        template=prepared.template.source,
        preflight={name: split.as_dict() for name, split in splits.items()},
        evaluation="validation split" if eval_rows else "none: the version has no usable validation rows",
        library_versions=library_versions(),
        output_dir=str(output_dir),
        adapter_dir=str(output_dir / "adapter"),
    )
    if checkpoint is not None and max_steps and checkpoint_step(checkpoint) >= max_steps:
        raise LoraError(
            f"run {record['run_id']} already trained {checkpoint_step(checkpoint)} steps: "
            "pass a larger --max-steps to continue it"
        )
    if checkpoint is not None:
        record.setdefault("resumed_from", []).append(str(checkpoint))
        say(f"resuming {record['run_id']} from {checkpoint}")
    elif prepared.resumed:
        say(f"{record['run_id']} has no checkpoint yet: training it again from the start")
    save_record(store, record)
    say(f"run {record['run_id']}: {prepared.plan.describe()}, "
        f"{len(train_rows)} train / {len(eval_rows)} validation examples")

    def update(metrics: dict[str, Any]) -> None:
        record["metrics"] = metrics
        save_record(store, record)

    if prepared.options.cpu_threads:
        import torch

        torch.set_num_threads(prepared.options.cpu_threads)
    callback = RunCallback(update, say)
    with terminate_as_interrupt():
        try:
            trainer = build_trainer(prepared, train_rows, eval_rows, output_dir / "checkpoints", max_steps,
                                    resuming=checkpoint is not None, callbacks=[callback])
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            adapter_dir = output_dir / "adapter"
            trainer.save_model(str(adapter_dir))
            record["metrics"] = callback.metrics(trainer.state)
            record["stopped_early"] = trainer.state.global_step < trainer.state.max_steps
            del trainer
            gc.collect()
            record["model"] = str(adapter_dir)
            if is_main_process():
                write_model_card(adapter_dir, record, prepared.version.splits)
            if request.merge and is_main_process():
                say("merging the adapter into the base model")
                record["merged_dir"] = str(merge_adapter(prepared.base_path, adapter_dir, output_dir / "merged"))
            record["status"] = "succeeded"
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            record["error"] = (
                f"interrupted; continue with: ftdata train lora {prepared.version.ref} --resume-from {record['run_id']}"
            )
            save_record(store, record)
            raise
        except Exception as exc:
            record["status"] = "failed"
            record["error"] = f"{type(exc).__name__}: {exc}"
            save_record(store, record)
            raise
    record.pop("error", None)
    save_record(store, record)
    return record


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a scheduler stopping the job) like Ctrl-C, so the record says how to resume."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def world_size() -> int:
    """Processes in this run: more than 1 under `accelerate launch` / torchrun on several GPUs."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def save_record(store: Store, record: dict[str, Any]) -> None:
    """Write the run record, from the main process only when several train together."""
    if is_main_process():
        write_run(store, record)


def build_trainer(prepared: Prepared, train_rows: list[Encoded], eval_rows: list[Encoded], checkpoints_dir: Path,
                  max_steps: int | None = None, resuming: bool = False, callbacks: list[Any] | None = None) -> Any:
    """An SFTTrainer over pre-tokenized rows (input_ids + assistant_masks), with LoRA and the device plan."""
    import torch
    from datasets.utils.logging import disable_progress_bar
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, EarlyStoppingCallback
    from transformers.utils import logging as transformers_logging
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    disable_progress_bar()
    transformers_logging.disable_progress_bar()
    options, plan = prepared.options, prepared.plan
    has_eval = bool(eval_rows)
    save_strategy = "steps" if options.eval_steps else "epoch"
    early_stopping = (
        [EarlyStoppingCallback(options.early_stopping_patience)] if has_eval and options.early_stopping_patience else []
    )
    config = SFTConfig(
        output_dir=str(checkpoints_dir),
        num_train_epochs=options.epochs,
        max_steps=max_steps or -1,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.lr,
        lr_scheduler_type=options.lr_scheduler,
        warmup_steps=options.warmup,
        weight_decay=options.weight_decay,
        seed=options.seed,
        logging_steps=options.logging_steps,
        eval_strategy=save_strategy if has_eval else "no",
        eval_on_start=has_eval and not resuming,
        save_strategy=save_strategy,
        **({"eval_steps": options.eval_steps, "save_steps": options.eval_steps} if options.eval_steps else {}),
        save_total_limit=options.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        bf16=plan.bf16,
        fp16=plan.fp16,
        use_cpu=plan.use_cpu,
        activation_checkpointing=plan.gradient_checkpointing,
        dataloader_pin_memory=plan.device == "cuda",
        model_init_kwargs={"dtype": plan.load_dtype},
        max_length=options.max_length,
        truncation_mode="keep_start",
        packing=False,
        assistant_only_loss=False,  # the rows carry their own assistant_masks (weight-0 messages cleared)
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
    )
    quantization = None
    if plan.qlora:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, plan.load_dtype),
        )
    lora = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_module_list(),
        bias="none",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=prepared.base_path,
        args=config,
        train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(eval_rows) if has_eval else None,
        processing_class=prepared.tokenizer,
        peft_config=lora,
        quantization_config=quantization,
        callbacks=[*(callbacks or []), *early_stopping],
    )
    # Progress goes to stderr through RunCallback; the stock callbacks print log dicts on stdout.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def _dataset(rows: list[Encoded]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict({
        "input_ids": [r.input_ids for r in rows],
        "assistant_masks": [r.assistant_masks for r in rows],
    })
