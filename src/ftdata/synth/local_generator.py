"""`local`: a transformers causal LM on this machine (CPU or CUDA), batched generation with left padding.

With no model named it runs the bundled SmolLM2-135M-Instruct (`ftdata.models`), so synthesis works
offline; any Hugging Face model directory or hub id works too. Precision: bf16 on CUDA, and on CPUs with
AMX tiles when the batch is at least BF16_MIN_BATCH (measured on such a CPU: bf16 slower than fp32 at
batch 1, 24 vs 29 new tokens/s, and faster from batch 8: 101 vs 64, 257 vs 146 at 32). AVX512-BF16
without AMX does not pay: on such a CPU here fp32 beat bf16 at every batch size (bench/bench_generate.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ftdata.models import BUNDLED_NAME, ModelNotAvailable, resolve_model
from ftdata.synth.base import GenerationRequest, GenerationResult, GenerationSettings, SynthError

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

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
        import torch

        if not requests:
            return []
        loaded = self._model(settings)
        threads = torch.get_num_threads()
        if loaded.device == "cpu":
            # torch defaults to the machine's cores even when this process may use fewer; oversubscribed
            # threads made generation 5-10x slower here.
            torch.set_num_threads(available_cores())
        try:
            return generate_batch(loaded, requests, settings)
        finally:
            torch.set_num_threads(threads)


def generate_batch(loaded: LoadedModel, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """One left-padded batch through `model.generate`; replies end at the first end-of-sequence token."""
    import torch

    tok = loaded.tokenizer
    prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": TOP_P}
        if settings.temperature > 0
        else {"do_sample": False}
    )
    # Stop strings apply to the whole batch in transformers: the synth stage sends uniform batches.
    stops = requests[0].stop
    if any(r.stop != stops for r in requests):
        raise ValueError("a local generation batch must share its stop strings")
    if stops:
        sampling.update(stop_strings=list(stops), tokenizer=tok)
    # One seed per batch: torch samples a batch from one generator. Each reply is cached under its
    # own request seed, so a re-run reads back exactly these replies.
    torch.manual_seed(requests[0].seed)
    with torch.inference_mode():
        output = loaded.model.generate(
            **batch,
            max_new_tokens=settings.max_new_tokens,
            repetition_penalty=REPETITION_PENALTY,
            pad_token_id=tok.pad_token_id,
            **sampling,
        )
    new_tokens = output[:, batch["input_ids"].shape[1]:].tolist()
    prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
    results = []
    for tokens, prompt_length in zip(new_tokens, prompt_lengths, strict=True):
        end = next((i for i, t in enumerate(tokens) if t in loaded.eos_ids), None)
        kept = tokens if end is None else tokens[:end]
        text = tok.decode(kept, skip_special_tokens=True)
        stopped_at = min((i for i in (text.find(s) for s in stops) if i >= 0), default=None)
        if stopped_at is not None:
            text = text[:stopped_at]
        results.append(
            GenerationResult(
                text=text,
                finish_reason="length" if end is None and stopped_at is None else "stop",
                tokens_in=int(prompt_length),
                tokens_out=len(kept) + (0 if end is None else 1),
                cost_usd=0.0,
            )
        )
    return results
