"""The generator contract: chat prompts in, reply texts out.

A generator plugin is an object with the attributes and methods of `Generator`, registered through the
`register_generators` hook. The `synth` stage owns everything around it (prompts, caching, the spend cap,
quality checks), so a generator only has to turn `GenerationRequest`s into `GenerationResult`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

# "stop": the model ended the reply (or a stop string did); "length": the token cap cut it off;
# "sentence_limit": it ended at the end of its last allowed sentence (`GenerationRequest.max_sentences`).
FinishReason = Literal["stop", "length", "sentence_limit"]


class SynthError(RuntimeError):
    """A problem with synthetic generation a user can act on (missing key, unreachable endpoint, bad model)."""


@dataclass(frozen=True)
class GenerationSettings:
    """What a run asks of a generator; the same for every request of the run."""

    model: str
    temperature: float = 0.8
    max_new_tokens: int = 256
    base_url: str | None = None
    batch_size: int = 32
    concurrency: int = 4


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]
    # Per-request seed: sampling backends that take one (OpenAI `seed`, torch) get it, and it is part of
    # the cache key, so the same recipe asks the same questions.
    seed: int
    # Ask for one JSON object as the reply (Chat Completions `response_format`).
    json_object: bool = False
    # End the reply at the first of these strings (left out of the text), like Chat Completions `stop`.
    stop: tuple[str, ...] = ()
    # End the reply after this many complete sentences (None: no limit), cut after the sentence's closing
    # punctuation: a small model that never stops on its own ends on a sentence boundary instead of at the
    # token cap. Plain-text generators honour it; API generators (which only get structured requests) ignore it.
    max_sentences: int | None = None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    # "length": the reply hit max_new_tokens before the model ended it.
    finish_reason: FinishReason
    tokens_in: int
    tokens_out: int
    # None when the model has no known price (only the token cap applies then).
    cost_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationResult:
        return cls(
            text=str(data["text"]),
            finish_reason=data["finish_reason"] if data["finish_reason"] in ("length", "sentence_limit") else "stop",
            tokens_in=int(data["tokens_in"]),
            tokens_out=int(data["tokens_out"]),
            cost_usd=None if data.get("cost_usd") is None else float(data["cost_usd"]),
        )


class Generator(Protocol):
    """What `register_generators` registers."""

    name: str
    # True: `generate` takes many requests in one call (a local model) and keeps up to `batch_size` of them
    # decoding at once; the stage sends CHUNK_BATCHES x `batch_size` requests a call, one call at a time,
    # and passes `on_reply`. False: one request per call, `concurrency` calls at once.
    batched: bool
    # True: replies reliably with a JSON object when asked (one request makes a whole example). False:
    # the stage asks for plain text in two passes (a user message, then the assistant's reply).
    structured: bool

    def default_model(self) -> str: ...

    def check(self, settings: GenerationSettings) -> None:
        """Raise SynthError before any work when the generator cannot run (missing key, missing package)."""

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 on_reply: Callable[[], None] | None = None) -> list[GenerationResult]:
        """One result per request, in order; a batched generator calls `on_reply` as each reply ends (for
        progress). Raise SynthError for failures that retrying will not fix."""
        ...


@dataclass
class Usage:
    """Tokens and dollars of the generations a run used (fresh or from the cache)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    # Requests whose model had no known price: their cost is not in cost_usd.
    unpriced: int = 0
    requests: int = 0
    cached: int = 0

    def add(self, result: GenerationResult, cached: bool) -> None:
        self.requests += 1
        self.cached += int(cached)
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        if result.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost_usd += result.cost_usd

    def merge(self, other: Usage) -> None:
        self.requests += other.requests
        self.cached += other.cached
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost_usd += other.cost_usd
        self.unpriced += other.unpriced
