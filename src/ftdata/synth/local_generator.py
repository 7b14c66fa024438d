"""`local`: a transformers causal LM on this machine (CPU or CUDA), batched generation by ftdata's own
decode loop (shared prompt prefix read once, finished rows dropped from the batch; see `generate_batch`).

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ftdata.models import BUNDLED_NAME, ModelNotAvailable, resolve_model
from ftdata.synth.base import (
    FinishReason,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    SynthError,
)
from ftdata.synth.quality import sentence_end

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

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
        import torch

        if not requests:
            return []
        loaded = self._model(settings)
        threads = torch.get_num_threads()
        if loaded.device == "cpu":
            # Set here, in the thread that runs the batch: torch defaults to the machine's cores even when
            # this process may use fewer, and cores other processes keep busy cost far more than they give.
            torch.set_num_threads(generation_threads())
        try:
            return generate_batch(loaded, requests, settings)
        finally:
            torch.set_num_threads(threads)


def generate_batch(loaded: LoadedModel, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """One batch, decoded token by token; a row leaves the batch as soon as its reply ends.

    `model.generate` runs every row until the longest reply of the batch ends, and a finished row costs
    about as much per step as a running one. Here a finished row is dropped from the batch and from the
    KV cache, so each step only runs unfinished rows. A reply ends at an end-of-sequence token, a stop
    string, its sentence limit, or the token cap (`finish_reason` "length": the stage rejects it as
    truncated).
    """
    import torch

    tok = loaded.tokenizer
    prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    token_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    sampler = Sampler(settings, loaded.eos_ids)
    replies = [ReplyState(r, tok, loaded.eos_ids) for r in requests]
    active = list(range(len(requests)))  # row i of the running batch is request active[i]
    # One seed per batch: torch samples a batch from one generator. Each reply is cached under its own
    # request seed, so a re-run reads back exactly these replies.
    torch.manual_seed(requests[0].seed)
    with torch.inference_mode():
        output, history, mask, positions = prefill(loaded, token_ids)
        cache = output.past_key_values
        next_position = positions[:, -1] + 1
        for _ in range(settings.max_new_tokens):
            tokens = sampler(history, output.logits[:, -1, :].float())
            token_list = tokens.tolist()
            keep = [row for row, index in enumerate(active)
                    if not replies[index].add(token_list[row], settings.max_new_tokens)]
            if not keep:
                break
            if len(keep) < len(active):
                rows = torch.tensor(keep, device=tokens.device)
                cache.batch_select_indices(rows)
                tokens, history, mask, next_position = tokens[rows], history[rows], mask[rows], next_position[rows]
                active = [active[row] for row in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            history = torch.cat([history, tokens[:, None]], dim=1)
            output = loaded.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position[:, None],
                                  past_key_values=cache, use_cache=True)
            next_position = next_position + 1
    return [reply.result(len(ids)) for reply, ids in zip(replies, token_ids, strict=True)]


def shared_prefix_length(token_ids: Sequence[Sequence[int]]) -> int:
    """Leading tokens all prompts share, leaving each prompt at least one token of its own."""
    shortest = min(len(ids) for ids in token_ids)
    length = 0
    while length < shortest - 1 and all(ids[length] == token_ids[0][length] for ids in token_ids):
        length += 1
    return length


def prefill(loaded: LoadedModel, token_ids: Sequence[Sequence[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read the prompts into the KV cache: (model output, token ids, attention mask, position ids).

    Prompts of a run share their opening (chat template and system turn), and reading prompt tokens is
    most of a CPU batch's time, so the shared prefix is read once and its cache copied to every row. Each
    row is then [prefix][padding][own tokens]: the padding sits between the parts, masked out, and
    position ids skip it, so every row sees exactly its own prompt.
    """
    import torch

    device = loaded.device
    shared = shared_prefix_length(token_ids)
    own = [ids[shared:] for ids in token_ids]
    width = max(len(ids) for ids in own)
    pad = loaded.tokenizer.pad_token_id
    suffix = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in own], dtype=torch.long, device=device)
    suffix_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in own], dtype=torch.long,
                               device=device)
    rows = len(token_ids)
    prefix = torch.tensor([list(token_ids[0][:shared])], dtype=torch.long, device=device).expand(rows, shared)
    mask = torch.cat([torch.ones_like(prefix), suffix_mask], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    cache = None
    if shared:
        cache = loaded.model(input_ids=prefix[:1], use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(rows)
    output = loaded.model(input_ids=suffix, attention_mask=mask, position_ids=positions[:, shared:],
                          past_key_values=cache, use_cache=True, logits_to_keep=1)
    return output, torch.cat([prefix, suffix], dim=1), mask, positions


class Sampler:
    """Next tokens from logits: repetition penalty (sparing the end-of-turn tokens), temperature, top-p.

    `model.generate` penalises every token already in the prompt. In a chat prompt that includes the
    end-of-turn token, which closes every turn (and is the padding): penalised, it made replies less
    likely to end, and every reply that runs into the cap is a rejected candidate.
    """

    def __init__(self, settings: GenerationSettings, end_ids: set[int]) -> None:
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        self.end_ids = sorted(end_ids)
        self.penalty = RepetitionPenaltyLogitsProcessor(REPETITION_PENALTY)
        self.sample = settings.temperature > 0
        self.warpers = LogitsProcessorList(
            [TemperatureLogitsWarper(settings.temperature), TopPLogitsWarper(TOP_P)] if self.sample else [])

    def __call__(self, history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        import torch

        end_logits = logits[:, self.end_ids].clone()
        scores = self.penalty(history, logits)
        scores[:, self.end_ids] = end_logits
        if not self.sample:
            return scores.argmax(dim=-1)
        scores = self.warpers(history, scores)
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)


class ReplyState:
    """The reply of one request as it is decoded, and whether (and why) it has ended."""

    def __init__(self, request: GenerationRequest, tokenizer: Any, eos_ids: set[int]) -> None:
        self.request = request
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.tokens: list[int] = []
        self.text = ""
        self.finish: FinishReason | None = None

    def add(self, token: int, max_new_tokens: int) -> bool:
        """Take the next token; True once the reply has ended."""
        self.tokens.append(token)
        if token in self.eos_ids:
            self.finish = "stop"
            return True
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        stopped_at = min((i for i in (self.text.find(s) for s in self.request.stop) if i >= 0), default=None)
        if stopped_at is not None:
            self.text, self.finish = self.text[:stopped_at], "stop"
        elif self.request.max_sentences is not None:
            end = sentence_end(self.text, self.request.max_sentences)
            if end is not None:
                self.text, self.finish = self.text[:end], "sentence_limit"
        if self.finish is None and len(self.tokens) >= max_new_tokens:
            self.finish = "length"
        return self.finish is not None

    def result(self, prompt_tokens: int) -> GenerationResult:
        return GenerationResult(
            text=self.text,
            # A reply still running when its batch ended: only possible at the cap.
            finish_reason=self.finish or "length",
            tokens_in=prompt_tokens,
            tokens_out=len(self.tokens),
            cost_usd=0.0,
        )
