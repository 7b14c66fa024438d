"""A Trainer callback that keeps the run record current and reports progress on stderr.

Step time is measured from `on_step_begin` to `on_step_end`, so seconds/step and tokens/s cover the
optimizer steps only, not evaluation or checkpointing.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any

from transformers import TrainerCallback


class RunCallback(TrainerCallback):
    def __init__(self, on_update: Callable[[dict[str, Any]], None], say: Callable[[str], None]) -> None:
        self.on_update = on_update
        self.say = say
        self.step_seconds = 0.0
        self.steps = 0
        self.initial_tokens = 0
        self._step_started: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.initial_tokens = state.num_input_tokens_seen

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._step_started is not None:
            self.step_seconds += perf_counter() - self._step_started
            self.steps += 1
            self._step_started = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.say(
                f"step {state.global_step}/{state.max_steps}  epoch {state.epoch or 0:.2f}  "
                f"loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}"
            )
        elif "eval_loss" in logs:
            self.say(f"eval at step {state.global_step}: eval_loss {logs['eval_loss']:.4f}")
        self.on_update(self.metrics(state))

    def metrics(self, state: Any) -> dict[str, Any]:
        tokens = state.num_input_tokens_seen - self.initial_tokens
        metrics: dict[str, Any] = {
            **loss_curves(state.log_history),
            "global_step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "best_checkpoint": state.best_model_checkpoint,
            "best_eval_loss": state.best_metric,
            "steps_this_session": self.steps,
            "seconds_per_step": round(self.step_seconds / self.steps, 4) if self.steps else None,
            "tokens_per_second": round(tokens / self.step_seconds, 1) if self.step_seconds else None,
            "input_tokens_seen": state.num_input_tokens_seen,
            **peak_memory(),
        }
        return metrics


def loss_curves(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    train = [
        {"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"]} for e in log_history if "loss" in e
    ]
    evals = [
        {"step": e["step"], "epoch": e.get("epoch"), "loss": e["eval_loss"]} for e in log_history if "eval_loss" in e
    ]
    return {
        "train_loss": train,
        "eval_loss": evals,
        "initial_eval_loss": evals[0]["loss"] if evals else None,
        "final_eval_loss": evals[-1]["loss"] if evals else None,
    }


def peak_memory() -> dict[str, int | None]:
    """Peak resident memory of this process, and peak CUDA memory allocated when training on a GPU."""
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {"peak_rss_bytes": rss_bytes, "peak_gpu_memory_bytes": gpu}
