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
from ftdata.synth.decode import Sampler, reserved_cache
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


# A batch drops its ended rows (from the KV cache too) once they are this share of its rows: every drop
# copies the cache, and an ended row still riding along costs a row's compute per step.
COMPACT_SHARE = 8


def generate_batch(loaded: LoadedModel, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """One batch, decoded token by token; rows leave the batch soon after their replies end.

    `model.generate` runs every row until the longest reply of the batch ends, and a finished row costs
    about as much per step as a running one. Here ended rows are dropped from the batch and from the KV
    cache (once they are 1/COMPACT_SHARE of it), so steps run (nearly) only unfinished rows. A reply ends
    at an end-of-sequence token, a stop string, its sentence limit, or the token cap (`finish_reason`
    "length": the stage rejects it as truncated).
    """
    import torch

    tok = loaded.tokenizer
    prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    token_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    sampler = Sampler(settings.temperature, TOP_P, REPETITION_PENALTY, loaded.eos_ids)
    replies = [ReplyState(r, tok, loaded.eos_ids) for r in requests]
    # Row i of the running batch decodes request rows[i]; None once that reply has ended.
    rows: list[int | None] = list(range(len(requests)))
    # One seed per batch: torch samples a batch from one generator. Each reply is cached under its own
    # request seed, so a re-run reads back exactly these replies.
    torch.manual_seed(requests[0].seed)
    with torch.inference_mode():
        logits, history, mask, positions, cache = prefill(loaded, token_ids, settings.max_new_tokens)
        next_position = positions[:, -1] + 1
        for _ in range(settings.max_new_tokens):
            tokens = sampler(history, logits.float())
            for row, token in enumerate(tokens.tolist()):
                index = rows[row]
                if index is not None and replies[index].add(token, settings.max_new_tokens):
                    rows[row] = None
            live = [row for row, index in enumerate(rows) if index is not None]
            if not live:
                break
            if len(rows) - len(live) >= max(1, len(rows) // COMPACT_SHARE):
                keep = torch.tensor(live, device=tokens.device)
                cache.batch_select_indices(keep)
                tokens, history, mask, next_position = tokens[keep], history[keep], mask[keep], next_position[keep]
                rows = [rows[row] for row in live]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            history = torch.cat([history, tokens[:, None]], dim=1)
            logits = loaded.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position[:, None],
                                  past_key_values=cache, use_cache=True).logits[:, -1, :]
            next_position = next_position + 1
    return [reply.result(len(ids)) for reply, ids in zip(replies, token_ids, strict=True)]


def shared_prefix_length(token_ids: Sequence[Sequence[int]]) -> int:
    """Leading tokens all prompts share, leaving each prompt at least one token of its own."""
    shortest = min(len(ids) for ids in token_ids)
    length = 0
    while length < shortest - 1 and all(ids[length] == token_ids[0][length] for ids in token_ids):
        length += 1
    return length


# Prompts whose own parts are within this share of the longest one are read in one forward pass; a
# shorter prompt starts a new pass rather than being padded (padding is read like any token).
MAX_PADDING_SHARE = 0.15


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of `lengths` in groups of similar length, longest first: each group's lengths are at least
    (1 - MAX_PADDING_SHARE) of its longest."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for index in order:
        if groups and lengths[index] >= (1 - MAX_PADDING_SHARE) * lengths[groups[-1][0]]:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def prefill(loaded: LoadedModel, token_ids: Sequence[Sequence[int]],
            max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any]:
    """Read the prompts into a KV cache: (last logits, token ids, attention mask, position ids, cache).

    Prompts of a run share their opening (chat template and system turn), and reading prompt tokens is
    most of a CPU batch's time, so the shared prefix is read once and its keys and values copied to every
    row. The rest of each prompt (its own part) is read in `length_groups`, so few padding tokens are
    read. In the cache each row is [prefix][gap][own tokens]: the gap (padding) is masked out, and
    position ids skip it, so every row sees exactly its own prompt. The cache reserves room for
    `max_new_tokens` more positions (`decode.reserved_cache`).
    """
    import torch

    device, model = loaded.device, loaded.model
    layers = model.config.num_hidden_layers
    shared = shared_prefix_length(token_ids)
    own = [list(ids[shared:]) for ids in token_ids]
    width = max(len(ids) for ids in own)
    pad = loaded.tokenizer.pad_token_id
    rows = len(token_ids)
    history = torch.tensor([list(token_ids[0][:shared]) + [pad] * (width - len(ids)) + ids for ids in own],
                           dtype=torch.long, device=device)
    mask = torch.tensor([[1] * shared + [0] * (width - len(ids)) + [1] * len(ids) for ids in own],
                        dtype=torch.long, device=device)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    prefix = None
    if shared:
        prefix = reserved_cache(layers, shared)
        model(input_ids=history[:1, :shared], past_key_values=prefix, use_cache=True, logits_to_keep=1)
    cache = reserved_cache(layers, shared + width + max_new_tokens)
    pieces = []
    for group in length_groups([len(ids) for ids in own]):
        group_width = len(own[group[0]])
        gap = width - group_width
        part = reserved_cache(layers, shared + group_width)
        for layer, prefix_layer in zip(part.layers, prefix.layers if prefix else [None] * layers, strict=True):
            if prefix_layer is not None:
                layer.reserve(len(group), prefix_layer.keys)
                layer.place(slice(None), 0, prefix_layer.keys, prefix_layer.values, shared)
        index = torch.tensor(group, device=device)
        output = model(input_ids=history[index, shared + gap:],
                       attention_mask=torch.cat([mask[index, :shared], mask[index, shared + gap:]], dim=1),
                       position_ids=positions[index, shared + gap:], past_key_values=part, use_cache=True,
                       logits_to_keep=1)
        pieces.append((index, output.logits[:, -1]))
        for layer, part_layer in zip(cache.layers, part.layers, strict=True):
            if not layer.is_initialized:
                layer.reserve(rows, part_layer.keys)
            keys, values = part_layer.keys, part_layer.values
            if gap:  # positions no row of this group uses: zeros (masked out, but never garbage)
                layer.place(index, shared, keys.new_zeros(keys[:, :, :gap].shape), values.new_zeros(
                    values[:, :, :gap].shape), shared + width)
            layer.place(index, 0, keys[:, :, :shared], values[:, :, :shared], shared + width)
            layer.place(index, shared + gap, keys[:, :, shared:], values[:, :, shared:], shared + width)
    logits = pieces[0][1].new_empty((rows, pieces[0][1].shape[-1]))
    for index, part_logits in pieces:
        logits[index] = part_logits
    return logits, history, mask, positions, cache


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
