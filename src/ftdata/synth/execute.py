"""Turn planned candidates into generated examples: prompts → cache or generator → checked replies.

Work goes in chunks (a batch for a local model, one request for an API) run by `workers` threads. The
spend cap is checked between chunks with a rule that makes the stopping point deterministic: chunk j
starts only if the chunks up to j - workers (the ones certain to have finished) spent less than the cap.
The chunks in flight when the cap is reached still finish, so a run can pass the cap by at most
`workers` chunks. Cached generations count at what they cost when made, so a re-run stops at the same
candidate and yields the same rows while paying nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from ftdata.stage import Progress
from ftdata.synth import prompts
from ftdata.synth.base import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    Generator,
    Usage,
)
from ftdata.synth.cache import GenerationCache, generation_key
from ftdata.synth.plan import Candidate
from ftdata.synth.prompts import SeedExample
from ftdata.synth.quality import repetition_problem, sentence_count

SEED_MODULUS = 2**31
# A batched generator gets this many batches' worth of candidates a call: it keeps `batch_size` replies
# decoding and starts the next request as soon as one ends, so a call pays for one batch's tail (the
# few longest replies running nearly alone), not one per batch.
CHUNK_BATCHES = 4
QUESTION_CAP_FLOOR = 48
ANSWER_CAP_FLOOR = 64


@dataclass
class Outcome:
    """What one candidate became: an example (user + assistant) or a reason it failed."""

    candidate: Candidate
    user: str | None = None
    assistant: str | None = None
    reason: str | None = None
    detail: str | None = None
    raw: str | None = None  # the reply that failed, for rejected.jsonl

    def fail(self, reason: str, detail: str, raw: str) -> Outcome:
        self.reason, self.detail, self.raw = reason, detail, raw
        return self


@dataclass(frozen=True)
class SpendCap:
    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def reached(self, usage: Usage) -> bool:
        if self.max_tokens is not None and usage.tokens_in + usage.tokens_out >= self.max_tokens:
            return True
        return self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd


def reply_problem(result: GenerationResult, max_new_tokens: int) -> tuple[str, str] | None:
    """A reply no example should be made from: a repetition loop, or one cut off by the token cap."""
    loop = repetition_problem(result.text)
    if loop is not None:
        return "degenerate_repetition", loop
    if result.finish_reason == "length":
        return "truncated", f"reply hit its {max_new_tokens}-token cap before it ended"
    return None


def percentile_95(values: Sequence[int]) -> int:
    """Nearest-rank 95th percentile: what a typical long seed reaches, ignoring a few outliers."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def sentence_limit(texts: Sequence[str]) -> int | None:
    """Sentences a generated text of one role may have: the seeds' 95th percentile (None without seeds)."""
    return max(1, percentile_95([sentence_count(t) for t in texts])) if texts else None


def estimated_tokens(text: str) -> int:
    """A text's tokens without a tokenizer: English runs about 4 UTF-8 bytes a token (non-Latin scripts
    fewer bytes a token, where this under-counts; the 2x in `style_cap` covers that)."""
    return -(-len(text.encode()) // 4)


def style_cap(texts: Sequence[str], max_new_tokens: int, floor: int) -> int:
    """Token cap for generated texts of one role: twice the seeds' 95th-percentile length, within limits.

    A reply far longer than the seeds it imitates is off-style; for a local model the cap also bounds how
    long a batch waits for its longest row (generation runs until the last row of the batch ends).
    """
    if not texts:
        return max_new_tokens
    return min(max_new_tokens, max(floor, 2 * percentile_95([estimated_tokens(t) for t in texts])))


class CandidateRunner:
    """Makes the examples of one chunk of candidates; safe to call from several threads.

    Plain (two-pass) generation caps each pass at `style_cap` of the seeds' user messages and answers, and
    ends a reply at the end of its last allowed sentence (`sentence_limit` of the seeds): SmolLM2-135M
    rarely ends an answer on its own within twice the seeds' length, and a reply the cap cuts mid-sentence
    is rejected as truncated. Structured requests get `max_new_tokens` (API calls run side by side: one
    long reply delays no other).
    """

    def __init__(self, generator: Generator, model: str, settings: GenerationSettings, cache: GenerationCache,
                 method: str, seeds: Sequence[SeedExample] = ()) -> None:
        self.generator = generator
        self.model = model
        self.settings = settings
        self.cache = cache
        self.method = method
        # Seeds whose user messages are one line each: a new message ends at its first line break (what
        # a small model writes after it is commentary), so pass 1 stops there instead of running on.
        self.question_stop = ("\n",) if seeds and all("\n" not in s.user for s in seeds) else ()
        self.question_settings = replace(
            settings, max_new_tokens=style_cap([s.user for s in seeds], settings.max_new_tokens, QUESTION_CAP_FLOOR))
        self.answer_settings = replace(
            settings, max_new_tokens=style_cap([s.assistant for s in seeds], settings.max_new_tokens, ANSWER_CAP_FLOOR))
        self.question_sentences = sentence_limit([s.user for s in seeds])
        self.answer_sentences = sentence_limit([s.assistant for s in seeds])
        self.on_reply: Callable[[], None] | None = None  # for progress, called as a batched generator's replies end

    def complete(self, requests: Sequence[GenerationRequest], usage: Usage,
                 settings: GenerationSettings | None = None) -> list[GenerationResult]:
        settings = settings or self.settings
        keys = [generation_key(self.generator.name, self.model, settings, r) for r in requests]
        results = [self.cache.get(key) for key in keys]
        missing = [i for i, result in enumerate(results) if result is None]
        todo = [requests[i] for i in missing]
        if not todo:
            fresh = []
        elif self.generator.batched:
            fresh = self.generator.generate(todo, settings, on_reply=self.on_reply)
        else:
            fresh = self.generator.generate(todo, settings)
        for i, result in zip(missing, fresh, strict=True):
            self.cache.put(keys[i], result)
            results[i] = result
        done: list[GenerationResult] = [r for r in results if r is not None]
        fresh_indices = set(missing)
        for i, result in enumerate(done):
            usage.add(result, cached=i not in fresh_indices)
        return done

    def run(self, chunk: Sequence[Candidate]) -> tuple[list[Outcome], Usage]:
        usage = Usage()
        if self.generator.structured:
            return self._structured(chunk, usage), usage
        return self._plain(chunk, usage), usage

    def _structured(self, chunk: Sequence[Candidate], usage: Usage) -> list[Outcome]:
        paraphrase = self.method == "paraphrase"
        requests = [
            GenerationRequest(
                prompts.paraphrase_structured(c.seeds[0]) if paraphrase
                else prompts.self_instruct_structured(list(c.seeds), c.label),
                c.request_seed,
                json_object=True,
            )
            for c in chunk
        ]
        fields = ("user",) if paraphrase else ("user", "assistant")
        outcomes = []
        for candidate, result in zip(chunk, self.complete(requests, usage), strict=True):
            outcome = Outcome(candidate)
            problem = reply_problem(result, self.settings.max_new_tokens)
            if problem is not None:
                outcomes.append(outcome.fail(*problem, result.text))
                continue
            try:
                parsed = prompts.parse_json_fields(result.text, fields)
            except prompts.UnparseableOutput as exc:
                outcomes.append(outcome.fail("unparseable_output", str(exc), result.text))
                continue
            outcome.user = parsed["user"]
            outcome.assistant = candidate.seeds[0].assistant if paraphrase else parsed["assistant"]
            outcomes.append(outcome)
        return outcomes

    def _plain(self, chunk: Sequence[Candidate], usage: Usage) -> list[Outcome]:
        """Pass 1 writes the user message (or the paraphrase); pass 2 answers it (self-instruct only)."""
        paraphrase = self.method == "paraphrase"
        first = [
            GenerationRequest(
                prompts.paraphrase_plain(c.seeds[0]) if paraphrase
                else prompts.self_instruct_question(list(c.seeds), c.label),
                c.request_seed,
                stop=self.question_stop,
                max_sentences=None if paraphrase else self.question_sentences,
            )
            for c in chunk
        ]
        outcomes = [Outcome(c) for c in chunk]
        pending: list[Outcome] = []
        for outcome, result in zip(outcomes, self.complete(first, usage, self.question_settings), strict=True):
            problem = reply_problem(result, self.question_settings.max_new_tokens)
            if problem is not None:
                outcome.fail(*problem, result.text)
                continue
            try:
                outcome.user = prompts.clean_plain_reply(result.text)
            except prompts.UnparseableOutput as exc:
                outcome.fail("unparseable_output", str(exc), result.text)
                continue
            if paraphrase:
                outcome.assistant = outcome.candidate.seeds[0].assistant
            else:
                pending.append(outcome)
        second = [
            GenerationRequest(
                prompts.self_instruct_answer(list(o.candidate.seeds), o.user or "", self.answer_sentences),
                (o.candidate.request_seed + 1) % SEED_MODULUS,
                max_sentences=self.answer_sentences,
            )
            for o in pending
        ]
        replies = self.complete(second, usage, self.answer_settings) if second else []
        for outcome, result in zip(pending, replies, strict=True):
            problem = reply_problem(result, self.answer_settings.max_new_tokens)
            if problem is not None:
                outcome.fail(*problem, result.text)
            elif not result.text.strip():
                outcome.fail("unparseable_output", "reply is empty", result.text)
            else:
                outcome.assistant = result.text.strip()
        return outcomes


def even_chunks(candidates: Sequence[Candidate], most: int) -> list[Sequence[Candidate]]:
    """As few chunks of at most `most` as it takes, of (nearly) equal size: 200 at 64 makes 4 of 50, not
    64, 64, 64 and 8, since a small last batch costs a local model nearly as much per step as a full one."""
    count = -(-len(candidates) // most)
    size = -(-len(candidates) // count) if count else most
    return [candidates[i:i + size] for i in range(0, len(candidates), size)]


def run_candidates(
    candidates: Sequence[Candidate], runner: CandidateRunner, chunk_size: int, workers: int, cap: SpendCap,
    progress: Progress,
) -> tuple[list[Outcome], Usage, bool]:
    """Outcomes of a prefix of `candidates` (all of them unless the cap stops it), usage, whether it did."""
    chunks = even_chunks(candidates, chunk_size)
    outcomes: list[Outcome] = []
    usage = Usage()
    replies = 0

    def reply_ended() -> None:  # from the generator's thread; the progress line is thread-safe
        nonlocal replies
        replies += 1
        progress.start(f"synth: {len(outcomes)}/{len(candidates)} generated, {replies} replies", None)

    runner.on_reply = reply_ended
    futures: list[Future[tuple[list[Outcome], Usage]]] = []
    collected = 0
    cap_reached = False

    def collect_next() -> None:
        nonlocal collected
        chunk_outcomes, chunk_usage = futures[collected].result()
        collected += 1
        outcomes.extend(chunk_outcomes)
        usage.merge(chunk_usage)
        progress.start(f"synth: {len(outcomes)}/{len(candidates)} generated", None)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ftdata-synth") as pool:
        try:
            for index, chunk in enumerate(chunks):
                if index >= workers:
                    while collected <= index - workers:
                        collect_next()
                    if cap.reached(usage):
                        cap_reached = True
                        break
                futures.append(pool.submit(runner.run, chunk))
            while collected < len(futures):
                collect_next()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return outcomes, usage, cap_reached
