"""`local`: a transformers causal LM on this machine (CPU or CUDA), batched generation by ftdata's own
continuous-batching decode loop (`ftdata.synth.engine`).

With no model named it runs the bundled SmolLM2-135M-Instruct (`ftdata.models`), so synthesis works
offline; any Hugging Face model directory or hub id works too. Precision: bf16 on CUDA, and on CPUs with
AMX tiles when the batch is at least BF16_MIN_BATCH (measured on such a CPU: bf16 slower than fp32 at
batch 1, 24 vs 29 new tokens/s, and faster from batch 8: 101 vs 64, 257 vs 146 at 32). AVX512-BF16
without AMX does not pay: on such a CPU here fp32 beat bf16 at every batch size (bench/bench_generate.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ftdata.models import BUNDLED_NAME, ModelNotAvailable, resolve_model
from ftdata.synth.base import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    SynthError,
)

if TYPE_CHECKING:
    import torch

BF16_MIN_BATCH = 8
TOP_P = 0.95
# A mild penalty on tokens already present cuts SmolLM2's repetition loops without bending its style.
REPETITION_PENALTY = 1.1


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# How long `generation_threads` watches the machine before a batch (jiffies are 10 ms: 20 per core).
IDLE_WINDOW_S = 0.2


def cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat; None where there is no /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)  # idle + iowait, all


def generation_threads() -> int:
    """Threads for the next batch: this process's cores, less those other processes keep busy right now.

    torch's threads meet at a barrier many times per token; with another process on one of two cores,
    2 threads made a decode step 5-20x slower than 1 (the descheduled thread holds up every barrier), while
    1 thread on a free core is at worst 2x slower than 2. The synth stage is idle while this samples.
    """
    cores = available_cores()
    before = cpu_times()
    if before is None or cores == 1:
        return cores
    time.sleep(IDLE_WINDOW_S)
    after = cpu_times()
    if after is None or after[1] <= before[1]:
        return cores
    idle_share = (after[0] - before[0]) / (after[1] - before[1])
    idle_cores = round(idle_share * (os.cpu_count() or cores))
    return max(1, min(cores, idle_cores))


def cpu_supports_bf16() -> bool:
    """bf16 kernels exist (AVX512-BF16 or AMX); whether they are faster than fp32 is `cpu_has_amx`."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def cpu_has_amx() -> bool:
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_device_dtype(batch_size: int) -> tuple[str, torch.dtype]:
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if batch_size >= BF16_MIN_BATCH and cpu_has_amx():
        return "cpu", torch.bfloat16
    return "cpu", torch.float32


class LoadedModel:
    def __init__(self, path: str, device: str, dtype: torch.dtype) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # The weight-loading bar would break the run's own progress line on stderr.
        hf_logging.disable_progress_bar()
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])


class LocalGenerator:
    name = "local"
    batched = True
    structured = False

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def default_model(self) -> str:
        return BUNDLED_NAME

    def check(self, settings: GenerationSettings) -> None:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise SynthError(
                f"the local generator needs torch and transformers ({exc.name} is missing): "
                "pip install torch==2.13.0 'ftdata[local]' (or use --synth-generator openai)"
            ) from None
        try:
            resolve_model(settings.model)
        except ModelNotAvailable as exc:
            raise SynthError(str(exc)) from None

    def _model(self, settings: GenerationSettings) -> LoadedModel:
        path = resolve_model(settings.model)
        device, dtype = choose_device_dtype(settings.batch_size)
        key = (path, device, str(dtype))
        with self._lock:
            if key not in self._loaded:
                try:
                    self._loaded[key] = LoadedModel(path, device, dtype)
                except OSError as exc:
                    raise SynthError(f"cannot load local model {settings.model!r}: {exc}") from None
            return self._loaded[key]

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 on_reply: Callable[[], None] | None = None) -> list[GenerationResult]:
        import torch

        from ftdata.synth import engine

        if not requests:
            return []
        loaded = self._model(settings)
        threads = torch.get_num_threads()
        if loaded.device == "cpu":
            # Set here, in the thread that runs the batch: torch defaults to the machine's cores even when
            # this process may use fewer, and cores other processes keep busy cost far more than they give.
            torch.set_num_threads(generation_threads())
        try:
            return engine.generate(loaded, requests, settings, settings.batch_size, TOP_P, REPETITION_PENALTY, on_reply)
        finally:
            torch.set_num_threads(threads)
