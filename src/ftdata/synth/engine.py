"""Continuous batching for the local generator: up to `max_rows` replies decode at once, and a request
waiting its turn takes the place of a reply as soon as that ends.

`model.generate` runs a static batch until its longest reply ends; a batch whose rows have mostly ended
still pays a weight read per step for a handful of rows (measured: steps with under 20 of 48 rows left
were 40% of a batch's decode time). Here every row of the running batch shares one column space in a
reserved KV cache (`decode.ReservedCache`): a decode step writes each row's new token at the same
column, and a request admitted later has its prompt placed so that it ends at that column, with the
columns before it masked out. When the cache runs out of columns, the columns no live row uses any more
are cut from the left.

Prompts of a call share their opening (chat template and system turn), and on a CPU reading prompt
tokens is a large part of the work, so the shared prefix is read once per call and its keys and values
copied to every row. Each admitted request reads only its own part, in groups of similar length
(`length_groups`) so that little padding is read.

Greedy replies are the same whatever the batch: batched or one at a time, admitted first or last (a test
holds the engine to that).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ftdata.synth.base import FinishReason, GenerationRequest, GenerationResult, GenerationSettings
from ftdata.synth.decode import ReservedCache, Sampler
from ftdata.synth.quality import sentence_end

# Ended rows leave the batch (and the cache) once they are this share of the rows: every removal copies
# the cache, and an ended row still in the batch costs a row's compute per step. Requests waiting are
# admitted at the same moment, into the places freed.
COMPACT_SHARE = 8
# Prompts whose own parts are within this share of the longest one are read in one forward pass; a
# shorter prompt starts a new pass rather than being padded (padding is read like any token).
MAX_PADDING_SHARE = 0.15


def shared_prefix_length(token_ids: Sequence[Sequence[int]]) -> int:
    """Leading tokens all prompts share, leaving each prompt at least one token of its own."""
    shortest = min(len(ids) for ids in token_ids)
    length = 0
    while length < shortest - 1 and all(ids[length] == token_ids[0][length] for ids in token_ids):
        length += 1
    return length


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


class RunningBatch:
    """The rows decoding now: KV cache, token history (for the repetition penalty), attention mask and
    next position of each row, in one column space that ends at the cache's length (`width`)."""

    def __init__(self, model: Any, token_ids: Sequence[Sequence[int]], pad: int, max_rows: int,
                 max_new_tokens: int) -> None:
        self.model = model
        self.token_ids = token_ids
        self.pad = pad
        self.device = next(model.parameters()).device
        self.layers = model.config.num_hidden_layers
        self.shared = shared_prefix_length(token_ids)
        longest = max(len(ids) for ids in token_ids)
        # Room for the longest prompt and reply, and as much again before columns must be cut.
        self.cache = ReservedCache(self.layers, 2 * (longest + max_new_tokens), max_rows)
        self.requests: list[int | None] = []  # request index of each row; None once its reply has ended
        self.start: list[int] = []  # first column of each row's prompt
        self.history = torch.full((0, longest), pad, dtype=torch.long, device=self.device)
        self.mask = torch.zeros((0, longest), dtype=torch.long, device=self.device)
        self.next_position = torch.zeros((0,), dtype=torch.long, device=self.device)
        self.prefix_ids = list(token_ids[0][:self.shared])
        self.prefix: ReservedCache | None = None
        if self.shared:
            self.prefix = ReservedCache(self.layers, self.shared, 1)
            model(input_ids=torch.tensor([self.prefix_ids], device=self.device),
                  past_key_values=self.prefix, use_cache=True, logits_to_keep=1)
        self.cache.set_length(longest)

    @property
    def width(self) -> int:
        return self.cache.get_seq_length()

    def admit(self, indices: Sequence[int]) -> torch.Tensor:
        """Read the prompts of requests `indices` into new rows at the end of the batch; their next-token
        logits, in the order the rows now have (`requests`)."""
        shared, width = self.shared, self.width
        logits = []
        for group in length_groups([len(self.token_ids[i]) - shared for i in indices]):
            own = [list(self.token_ids[indices[g]][shared:]) for g in group]
            group_width = len(own[0])
            rows = [[self.pad] * (group_width - len(ids)) + ids for ids in own]
            mask = torch.tensor([[1] * shared + [0] * (group_width - len(ids)) + [1] * len(ids) for ids in own],
                                dtype=torch.long, device=self.device)
            part = ReservedCache(self.layers, shared + group_width, len(group))
            if self.prefix is not None:
                part.place(slice(None), 0, self.prefix, shared, len(group))
            output = self.model(input_ids=torch.tensor(rows, device=self.device), attention_mask=mask,
                                position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0)[:, shared:],
                                past_key_values=part, use_cache=True, logits_to_keep=1)
            logits.append(output.logits[:, -1])
            # The group's block [prefix][padding][own] goes in whole, ending at the batch's last column.
            lead = width - shared - group_width
            first = len(self.requests)
            self.cache.place(slice(first, first + len(group)), lead, part, width, first + len(group))
            self.requests += [indices[g] for g in group]
            self.start += [lead] * len(group)
            self.mask = torch.cat([self.mask, torch.cat([mask.new_zeros((len(group), lead)), mask], dim=1)])
            self.history = torch.cat([self.history, torch.tensor(
                [[self.pad] * lead + self.prefix_ids + row for row in rows], dtype=torch.long, device=self.device)])
            self.next_position = torch.cat([self.next_position, torch.tensor(
                [shared + len(ids) for ids in own], dtype=torch.long, device=self.device)])
        return torch.cat(logits)

    def drop_ended(self) -> list[int]:
        """Remove the rows whose replies have ended; the (old) row numbers of those kept."""
        live = [row for row, index in enumerate(self.requests) if index is not None]
        keep = torch.tensor(live, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(keep)
        self.history, self.mask, self.next_position = self.history[keep], self.mask[keep], self.next_position[keep]
        self.requests = [self.requests[row] for row in live]
        self.start = [self.start[row] for row in live]
        return live

    def make_room(self, longest_waiting: int) -> None:
        """Before a step, when the cache is full: cut the columns before every live row's prompt, keeping
        enough for the longest prompt still waiting."""
        if self.width < self.cache.capacity:
            return
        starts = [s for s, index in zip(self.start, self.requests, strict=True) if index is not None]
        cut = min(min(starts, default=self.width), self.width - longest_waiting)
        if cut <= 0:  # capacity is twice the longest prompt and reply: cannot happen
            raise RuntimeError(f"reserved KV cache of {self.cache.capacity} positions is full")
        self.cache.shift_left(cut)
        self.history, self.mask = self.history[:, cut:], self.mask[:, cut:]
        self.start = [max(0, s - cut) for s in self.start]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append each row's next token and run the model one step; the next logits."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.requests), 1))], dim=1)
        self.history = torch.cat([self.history, tokens[:, None]], dim=1)
        output = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                            position_ids=self.next_position[:, None], past_key_values=self.cache, use_cache=True)
        self.next_position = self.next_position + 1
        return output.logits[:, -1, :]


def generate(loaded: Any, requests: Sequence[GenerationRequest], settings: GenerationSettings, max_rows: int,
             top_p: float, repetition_penalty: float,
             on_reply: Callable[[], None] | None = None) -> list[GenerationResult]:
    """Replies to `requests`, at most `max_rows` decoding at a time; `on_reply` is called as each ends.

    A reply ends at an end-of-sequence token, a stop string, its sentence limit, or the token cap
    (`finish_reason` "length": the stage rejects it as truncated).
    """
    if not requests:
        return []
    tok = loaded.tokenizer
    prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    token_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    replies = [ReplyState(r, tok, loaded.eos_ids) for r in requests]
    sampler = Sampler(settings.temperature, top_p, repetition_penalty, loaded.eos_ids)
    waiting = deque(range(len(requests)))
    cap = settings.max_new_tokens
    admit_at = max(1, max_rows // COMPACT_SHARE)
    # One seed per call: torch samples a batch from one generator. Each reply is cached under its own
    # request seed, so a re-run reads back exactly these replies.
    torch.manual_seed(requests[0].seed)
    with torch.inference_mode():
        batch = RunningBatch(loaded.model, token_ids, tok.pad_token_id, max_rows, cap)
        logits = batch.admit([waiting.popleft() for _ in range(min(max_rows, len(waiting)))])
        while batch.requests:
            tokens = sampler(batch.history, logits.float())
            for row, token in enumerate(tokens.tolist()):
                index = batch.requests[row]
                if index is not None and replies[index].add(token, cap):
                    batch.requests[row] = None
                    if on_reply is not None:
                        on_reply()
            ended = batch.requests.count(None)
            rows = len(batch.requests)
            if ended and (ended == rows or ended >= (admit_at if waiting else max(1, rows // COMPACT_SHARE))):
                tokens = tokens[torch.tensor(batch.drop_ended(), dtype=torch.long, device=tokens.device)]
            if batch.requests:
                batch.make_room(max((len(token_ids[i]) for i in waiting), default=0))
                logits = batch.step(tokens)
            if waiting and max_rows - len(batch.requests) >= (admit_at if batch.requests else 1):
                admitted = [waiting.popleft() for _ in range(min(max_rows - len(batch.requests), len(waiting)))]
                fresh = batch.admit(admitted)
                logits = torch.cat([logits, fresh]) if len(batch.requests) > len(admitted) else fresh
    return [reply.result(len(ids)) for reply, ids in zip(replies, token_ids, strict=True)]
