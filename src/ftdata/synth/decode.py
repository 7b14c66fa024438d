"""The parts of the local decode loop that make a CPU step cheap: a reserved KV cache, a shortlist sampler.

Measured on the 2-core dev machine with SmolLM2-135M at batch 64 and ~250 cached tokens, one decode step
took 246 ms with transformers' `DynamicCache`, 29% of it in `torch.cat`: the dynamic cache copies every
layer's whole K and V to append one token. `ReservedLayer` writes into a buffer reserved for the batch's
longest possible row and hands attention a view (181 ms a step). Sampling with top-p sorted the whole
49,152-token vocabulary for every row at every step (25% of decode time); `Sampler` takes a shortlist of
the top SHORTLIST tokens, which holds the whole nucleus for almost every row, and sorts the vocabulary
only for the rows where it does not, so the tokens kept are exactly those top-p keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Tokens taken from the top of each row's distribution before the nucleus is formed (see `Sampler`).
SHORTLIST = 256


def reserved_cache(layers: int, capacity: int) -> Any:
    """A transformers `Cache` of `ReservedLayer`s holding up to `capacity` tokens per row (transformers is
    imported here, not at module level: the stage imports this module without the local extra)."""
    from transformers.cache_utils import Cache

    return Cache(layers=[reserved_layer(capacity) for _ in range(layers)])


def reserved_layer(capacity: int) -> Any:
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A cache layer that appends into a buffer of `capacity` positions instead of concatenating.

        `keys` / `values` are views of the first `length` positions: attention reads them in place. Rows
        leave with `batch_select_indices`, which moves the rows kept to the front of the same buffer.
        """

        def __init__(self) -> None:
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.rows = 0

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.reserve(key_states.shape[0], key_states)

        def reserve(self, rows: int, like: torch.Tensor) -> None:
            """Buffers for `rows` rows, shaped and typed like `like` ([rows, heads, positions, dim])."""
            self.dtype, self.device = like.dtype, like.device
            _, heads, _, dim = like.shape
            self.key_buffer = like.new_empty((rows, heads, self.capacity, dim))
            self.value_buffer = like.new_empty((rows, heads, self.capacity, dim))
            self.rows = rows
            self.is_initialized = True

        def place(self, rows: torch.Tensor | slice, start: int, keys: torch.Tensor, values: torch.Tensor,
                  length: int) -> None:
            """Write `keys` / `values` of some rows at positions from `start`; the layer then holds `length`."""
            end = start + keys.shape[-2]
            self.key_buffer[rows, :, start:end] = keys
            self.value_buffer[rows, :, start:end] = values
            self.length = length
            self._views()

        def _views(self) -> None:
            self.keys = self.key_buffer[:self.rows, :, :self.length]
            self.values = self.value_buffer[:self.rows, :, :self.length]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
                   **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start, end = self.length, self.length + key_states.shape[-2]
            if end > self.capacity:
                raise ValueError(f"reserved KV cache holds {self.capacity} positions, {end} asked for")
            self.key_buffer[:self.rows, :, start:end] = key_states
            self.value_buffer[:self.rows, :, start:end] = value_states
            self.length = end
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def get_max_length(self) -> int:
            return self.capacity

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            kept = len(indices)
            # Gathered first (a copy of the used positions only), then written to the front of the buffer.
            self.key_buffer[:kept, :, :self.length] = self.key_buffer[indices, :, :self.length]
            self.value_buffer[:kept, :, :self.length] = self.value_buffer[indices, :, :self.length]
            self.rows = kept
            self._views()

    return ReservedLayer()


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
        import torch

        seen = torch.gather(logits, 1, history)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        scores = logits.scatter(1, history, seen)
        scores[:, self.end_ids] = logits[:, self.end_ids]
        return scores

    def __call__(self, history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        import torch

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
        import torch

        before = probs.cumsum(dim=-1) - probs  # the mass of the tokens more likely than each one
        keep = probs.masked_fill(before >= self.top_p, 0.0)
        keep[:, 0] = probs[:, 0]  # the most likely token always stays
        return token_ids.gather(1, torch.multinomial(keep, num_samples=1)).squeeze(1)
