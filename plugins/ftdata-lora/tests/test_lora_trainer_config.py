"""How a run configures SFTTrainer: evaluation, checkpoints, early stopping, LoRA, precision on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback

from ftdata.store import Store
from ftdata_lora.train import TrainRequest, build_trainer, prepare


def trainer_for(store: Store, tmp_path: Path, *pairs: str, with_validation: bool = True) -> Any:
    prepared = prepare(TrainRequest(ref="support@v1", store=store, option_pairs=("max_length=96", *pairs)))
    splits = prepared.preflight.splits
    eval_rows = splits["validation"].trainable() if with_validation else []
    return build_trainer(prepared, splits["train"].trainable(), eval_rows, tmp_path / "checkpoints", max_steps=2)


def early_stoppers(trainer: Any) -> list[EarlyStoppingCallback]:
    return [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]


def test_eval_and_checkpoint_every_n_steps_with_early_stopping(support_store: Store, tmp_path: Path,
                                                               bundled_model: str) -> None:
    trainer = trainer_for(support_store, tmp_path, "eval_steps=2", "early_stopping_patience=2", "save_total_limit=3",
                          "r=4", "alpha=8", "target_modules=q_proj,v_proj")
    args = trainer.args

    assert (args.eval_strategy, args.eval_steps, args.save_strategy, args.save_steps) == ("steps", 2, "steps", 2)
    assert args.eval_on_start and args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.greater_is_better is False and args.save_total_limit == 3
    assert [c.early_stopping_patience for c in early_stoppers(trainer)] == [2]
    assert (args.use_cpu, args.bf16, args.fp16) == (True, False, False)
    lora = trainer.model.peft_config["default"]
    assert (lora.r, lora.lora_alpha, sorted(lora.target_modules)) == (4, 8, ["q_proj", "v_proj"])
    assert trainer.model.dtype == torch.float32


def test_every_epoch_by_default_and_no_early_stopping_at_patience_zero(support_store: Store, tmp_path: Path,
                                                                      bundled_model: str) -> None:
    trainer = trainer_for(support_store, tmp_path, "early_stopping_patience=0", "precision=bf16")

    assert (trainer.args.eval_strategy, trainer.args.save_strategy) == ("epoch", "epoch")
    assert early_stoppers(trainer) == []
    assert (trainer.args.use_cpu, trainer.args.bf16) == (True, True)  # bf16 autocast over fp32 weights on CPU


def test_without_validation_rows_there_is_no_evaluation(support_store: Store, tmp_path: Path,
                                                        bundled_model: str) -> None:
    trainer = trainer_for(support_store, tmp_path, with_validation=False)

    assert (trainer.args.eval_strategy, trainer.args.save_strategy) == ("no", "epoch")
    assert not trainer.args.load_best_model_at_end and early_stoppers(trainer) == []
