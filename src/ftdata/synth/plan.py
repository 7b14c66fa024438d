"""Which synthetic examples to ask for: a label and seed rows per candidate, in spending order.

The plan is a prefix-stable sequence: candidate i depends only on the seed, the data and candidates
before it, so raising `n` re-uses every cached generation of the smaller run, and a spend cap that stops
early stops at the end of a prefix of this order. With `balance`, that order puts the labels with the
fewest rows first (water-filling: each next candidate goes to the label that has the fewest rows
counting the candidates planned so far), so a budget that runs out is spent where rows are missing.
"""

from __future__ import annotations

import heapq
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from ftdata import frame as F
from ftdata.synth.prompts import SeedExample, seed_from_record

UNLABELLED = ""  # heap/sort key of rows without a label
# Seeds go into prompts whole: one very long row would crowd a small model's context (SmolLM2 has 8k
# tokens) and slow every batch it lands in. Such rows stay in the data; they are just not imitated.
SEED_MAX_CHARS = 6000


@dataclass(frozen=True)
class Candidate:
    number: int  # 1-based: the LINE of the synthetic row, "synth:<number>" in rejected.jsonl
    label: str | None
    seeds: tuple[SeedExample, ...]  # self-instruct: up to k rows of one label; paraphrase: one row
    request_seed: int


def collect_seeds(frame: pl.DataFrame) -> list[SeedExample]:
    """Human chat rows that can serve as seeds (synthetic rows never seed more synthetic rows, and rows
    over SEED_MAX_CHARS are not shown to a model)."""
    rows = frame.filter((pl.col(F.KIND) == "chat") & (pl.col(F.ORIGIN) == "human")).select(F.ID, F.RECORD, F.LABEL)
    seeds = []
    for row_id, text, label in rows.iter_rows():
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        seed = seed_from_record(row_id, record, label)
        if seed is not None and len(seed.user) + len(seed.assistant) <= SEED_MAX_CHARS:
            seeds.append(seed)
    return seeds


def _cycle_shuffled(items: Sequence[SeedExample], rng: random.Random) -> Iterator[SeedExample]:
    """Every item once in a random order, then again in a new order: each seed is used before any twice."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def _label_sequence(
    by_label: dict[str | None, list[SeedExample]], label_counts: dict[str | None, int], n: int, balance: bool,
    rng: random.Random,
) -> list[str | None]:
    labels = sorted(by_label, key=lambda label: label or UNLABELLED)
    if not balance:
        # In proportion to the seeds: the synthetic rows keep the data's label distribution.
        weights = [len(by_label[label]) for label in labels]
        return rng.choices(labels, weights=weights, k=n)
    heap = [(label_counts.get(label, 0), label or UNLABELLED, index) for index, label in enumerate(labels)]
    heapq.heapify(heap)
    sequence = []
    for _ in range(n):
        count, key, index = heapq.heappop(heap)
        sequence.append(labels[index])
        heapq.heappush(heap, (count + 1, key, index))
    return sequence


def plan_candidates(
    seeds: Sequence[SeedExample], label_counts: dict[str | None, int], n: int, method: str, k: int, balance: bool,
    rng: random.Random,
) -> list[Candidate]:
    """`n` candidates. `label_counts`: rows per label in the data so far (what balancing evens out)."""
    if not seeds:
        return []
    by_label: dict[str | None, list[SeedExample]] = defaultdict(list)
    for seed in seeds:
        by_label[seed.label].append(seed)
    # Labels come from their own stream so that the draws below happen in candidate order (prefix-stable).
    labels = _label_sequence(by_label, label_counts, n, balance, random.Random(rng.getrandbits(64)))
    cycles = {label: _cycle_shuffled(group, rng) for label, group in by_label.items()}
    candidates = []
    for number, label in enumerate(labels, start=1):
        if method == "paraphrase":
            chosen: tuple[SeedExample, ...] = (next(cycles[label]),)
        else:
            group = by_label[label]
            chosen = tuple(rng.sample(group, min(k, len(group))))
        candidates.append(Candidate(number, label, chosen, rng.getrandbits(31)))
    return candidates
