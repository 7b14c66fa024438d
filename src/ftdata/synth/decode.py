"""The parts of the local decode loop that make a CPU step cheap: a reserved KV cache, a shortlist sampler.

Measured on the 2-core dev machine with SmolLM2-135M at batch 64 and ~250 cached tokens, one decode step
took 246 ms with transformers' `DynamicCache`, 29% of it in `torch.cat`: the dynamic cache copies every
layer's whole K and V to append one token. `ReservedLayer` writes into a buffer reserved for the batch's
longest possible row and hands attention a view (181 ms a step). Sampling with top-p sorted the whole
49,152-token vocabulary for every row at every step (25% of decode time); `Sampler` takes a shortlist of
the top SHORTLIST tokens, which holds the whole nucleus for most rows, and sorts the vocabulary only for
the rows where it does not, so the tokens kept are exactly those top-p keeps.

Imported by the local generator when it generates (torch and transformers are the `local` extra).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers.cache_utils import Cache, DynamicLayer

# Tokens taken from the top of each row's distribution before the nucleus is formed (see `Sampler`).
SHORTLIST = 256


class ReservedLayer(DynamicLayer):
    """One layer's keys and values in buffers of `capacity` positions for up to `max_rows` rows.

    `keys` / `values` are views of the first `rows` rows and `length` positions: a decode step writes in
    place and attention reads in place, where `DynamicLayer` concatenates (copying the whole layer).
    Buffers start zeroed, so masked-out positions never hold garbage (0 x NaN would still be NaN).
    """

    def __init__(self, capacity: int, max_rows: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.max_rows = max_rows
        self.length = 0
        self.rows = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.reserve(key_states)

    def reserve(self, like: torch.Tensor) -> None:
        self.dtype, self.device = like.dtype, like.device
        _, heads, _, dim = like.shape
        self.key_buffer = like.new_zeros((self.max_rows, heads, self.capacity, dim))
        self.value_buffer = like.new_zeros((self.max_rows, heads, self.capacity, dim))
        self.is_initialized = True

    def _views(self) -> None:
        if self.is_initialized:
            self.keys = self.key_buffer[:self.rows, :, :self.length]
            self.values = self.value_buffer[:self.rows, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.reserve(key_states)
            self.rows = key_states.shape[0]
        start, end = self.length, self.length + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"reserved KV cache holds {self.capacity} positions, {end} asked for")
        self.key_buffer[:self.rows, :, start:end] = key_states
        self.value_buffer[:self.rows, :, start:end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def place(self, rows: slice, start: int, keys: torch.Tensor, values: torch.Tensor, length: int,
              row_count: int) -> None:
        """Write `keys` / `values` into `rows` at positions from `start`; then hold `row_count` rows of
        `length` positions."""
        if not self.is_initialized:
            self.reserve(keys)
        end = start + keys.shape[-2]
        self.key_buffer[rows, :, start:end] = keys
        self.value_buffer[rows, :, start:end] = values
        self.length, self.rows = length, row_count
        self._views()

    def shift_left(self, cut: int) -> None:
        """Drop the first `cut` positions of every row."""
        kept = self.length - cut
        self.key_buffer[:self.rows, :, :kept] = self.key_buffer[:self.rows, :, cut:self.length].clone()
        self.value_buffer[:self.rows, :, :kept] = self.value_buffer[:self.rows, :, cut:self.length].clone()
        self.length = kept
        self._views()

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices`, moved to the front (a copy of the used positions only)."""
        kept = len(indices)
        self.key_buffer[:kept, :, :self.length] = self.key_buffer[indices, :, :self.length]
        self.value_buffer[:kept, :, :self.length] = self.value_buffer[indices, :, :self.length]
        self.rows = kept
        self._views()


class ReservedCache(Cache):
    """A transformers `Cache` of `ReservedLayer`s, all rows in one column space of `capacity` positions."""

    def __init__(self, layers: int, capacity: int, max_rows: int) -> None:
        self.reserved = [ReservedLayer(capacity, max_rows) for _ in range(layers)]
        super().__init__(layers=list(self.reserved))
        self.capacity = capacity

    def set_length(self, length: int) -> None:
        for layer in self.reserved:
            layer.length = length
            layer._views()

    def place(self, rows: slice, start: int, source: ReservedCache, length: int, row_count: int) -> None:
        """Copy every position of `source`'s rows into `rows` of this cache, from position `start`."""
        for layer, other in zip(self.reserved, source.reserved, strict=True):
            layer.place(rows, start, other.keys, other.values, length, row_count)

    def shift_left(self, cut: int) -> None:
        for layer in self.reserved:
            layer.shift_left(cut)


class Sampler:
    """Next tokens from logits: repetition penalty (sparing the end-of-turn tokens), temperature, top-p.

    `model.generate` penalises every token already in the prompt. In a chat prompt that includes the
    end-of-turn token, which closes every turn (and is the padding): penalised, it made replies less
    likely to end, and every reply that runs into the cap is a rejected candidate.

    Top-p keeps the most likely tokens until their probability reaches `top_p` (transformers'
    `TopPLogitsWarper`: a token is kept when the tokens more likely than it hold less than `top_p`). The
    nucleus is formed from each row's SHORTLIST most likely tokens, with probabilities taken over the
    whole vocabulary; a row whose shortlist holds less than `top_p` gets the exact nucleus from a full sort.
    """

    def __init__(self, temperature: float, top_p: float, repetition_penalty: float, end_ids: Iterable[int]) -> None:
        self.end_ids = sorted(end_ids)
        self.temperature = temperature
        self.top_p = top_p
        self.penalty = repetition_penalty

    def penalised(self, history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """`logits` with every token already in `history` made less likely (CTRL's penalty: positive
        logits divided by it, negative ones multiplied), except the end-of-turn tokens."""
        seen = torch.gather(logits, 1, history)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        scores = logits.scatter(1, history, seen)
        scores[:, self.end_ids] = logits[:, self.end_ids]
        return scores

    def __call__(self, history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        scores = self.penalised(history, logits)
        if self.temperature <= 0:
            return scores.argmax(dim=-1)
        scores = scores / self.temperature
        width = min(SHORTLIST, scores.shape[-1])
        top, token_ids = scores.topk(width, dim=-1)
        probs = torch.exp(top - torch.logsumexp(scores, dim=-1, keepdim=True))
        tokens = self.draw(probs, token_ids)
        short = probs.sum(dim=-1) < self.top_p
        if bool(short.any()):
            # The nucleus reaches past the shortlist: those rows draw again from the whole vocabulary, sorted.
            rows = short.nonzero().squeeze(1)
            top, token_ids = scores[rows].sort(dim=-1, descending=True)
            tokens[rows] = self.draw(torch.softmax(top, dim=-1), token_ids)
        return tokens

    def draw(self, probs: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """One token per row from its nucleus; `probs` (most likely first) and `token_ids` are aligned."""
        before = probs.cumsum(dim=-1) - probs  # the mass of the tokens more likely than each one
        keep = probs.masked_fill(before >= self.top_p, 0.0)
        keep[:, 0] = probs[:, 0]  # the most likely token always stays
        return token_ids.gather(1, torch.multinomial(keep, num_samples=1)).squeeze(1)
