"""near_dedup: MinHash + LSH near-duplicate removal (`near_duplicate`), verified by exact Jaccard.

What is compared: the words of the messages `fields` selects — by default the user, assistant and tool
turns, leaving out system and developer prompts, which many distinct rows share — as sets of
`shingle_size`-word shingles (lower-cased; a word is a run of letters, digits, `_` or non-ASCII characters).

Template text: a shingle found in at least `template_rows` rows is treated as template (a long shared
instruction, a tool preamble, a stock phrase) and left out of the sets, so rows that merely share a template
are compared on what differs. Document frequency is counted on all rows up to 20,000, on an evenly spaced
sample of 20,000 above that (a shingle then needs at least 2 sample rows, so from 500,000 rows on the bar is
about n / 10,000 rows). The cost: a family of more than `template_rows` near copies of one text looks like
a template and is not caught (raise `template_rows`; 0 turns the filter off).

Steps: signatures of every row (vectorised numpy MinHash, in worker processes); LSH banding with bands x
rows derived from the threshold (the most rows per band that still make a pair at the threshold a candidate
with probability >= 0.98); exact Jaccard of every candidate pair; union-find over the pairs at or above
`threshold` gives the clusters. Within a cluster rows are visited in `keep` order (first, longest, or human
before synthetic) and a row is dropped only when it is similar to a row already kept, which becomes its
DUPLICATE_OF with their exact Jaccard as SIMILARITY (so every drop has a direct partner >= threshold, and a
chain A~B~C where A and C differ keeps C). `keep = "all"` drops nothing and only marks clusters. Every
cluster member gets CLUSTER = the cluster's first row's cluster or id, which the split stage keeps together.
Rows with fewer than `min_words` words, or left with fewer than 5 shingles by the template filter, are not
compared (counted in the stats).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import click
import numpy as np
import polars as pl
from pydantic import Field

from ftdata import frame as F
from ftdata import minhash as M
from ftdata.stage import Context, Stage, StageConfig, StageResult
from ftdata.workers import map_bounded, pool_for

TEMPLATE_SAMPLE_ROWS = 20_000
CHUNK_ROWS = 5_000
PARALLEL_MIN_ROWS = 20_000
MAX_BUCKET = 200
PAIRS_PER_TASK = 20_000
T = TypeVar("T")


class NearDedupConfig(StageConfig):
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="Jaccard similarity of shingle sets from which rows are near duplicates"
    )
    shingle_size: int = Field(default=2, ge=1, le=8, description="Words per shingle")
    num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations (signature length)")
    fields: Literal["conversation", "user", "assistant", "all"] = Field(
        default="conversation", description="Text compared: conversation (no system prompt), user, assistant, or all"
    )
    keep: Literal["first", "longest", "human", "all"] = Field(
        default="first", description="Row kept per cluster: first, longest, human over synthetic, or all (mark only)"
    )
    min_words: int = Field(default=10, ge=1, description="Rows with fewer words are not compared")
    template_rows: int = Field(
        default=50, ge=0, description="Shingles in at least this many rows are template text, ignored (0 = off)"
    )


Runner = Callable[[Callable[..., T], Iterable[tuple[Any, ...]]], list[T]]


@contextmanager
def task_runner(workers: int, rows: int, shared: Executor | None = None) -> Iterator[Runner]:
    """Run task functions in worker processes (the run's shared pool, else a fresh one) when that pays
    off, else in this process. At most two tasks per worker are in flight (`ftdata.workers.map_bounded`)."""
    if workers <= 1 or rows < PARALLEL_MIN_ROWS:
        yield lambda fn, tasks: [fn(*args) for args in tasks]
        return
    with pool_for(shared, workers) as pool:
        yield lambda fn, tasks: list(map_bounded(pool, fn, tasks, workers, "near_dedup"))


def _chunks(records: pl.Series, rows: np.ndarray | None = None) -> Iterator[list[str]]:
    """Lists of RECORD strings, CHUNK_ROWS at a time (made lazily: only the chunks in flight exist)."""
    total = len(rows) if rows is not None else len(records)
    for start in range(0, total, CHUNK_ROWS):
        part = records.gather(rows[start : start + CHUNK_ROWS]) if rows is not None else records.slice(start, CHUNK_ROWS)
        yield part.to_list()


def template_buckets(records: pl.Series, spec: M.ShingleSpec, template_rows: int, run_tasks: Runner) -> np.ndarray:
    """Bucket ids of shingles that appear in at least `template_rows` rows (estimated on a sample)."""
    n = len(records)
    if template_rows <= 0 or n < template_rows:
        return np.empty(0, dtype=np.int64)
    sample = np.unique(np.linspace(0, n - 1, min(n, TEMPLATE_SAMPLE_ROWS)).astype(np.int64))
    tasks = ((chunk, spec) for chunk in _chunks(records, sample))
    counts = np.zeros(1 << M.BUCKET_BITS, dtype=np.int32)
    for values, frequency in run_tasks(M.sample_buckets, tasks):
        counts[values] += frequency  # values are unique within one result
    cut = max(2, int(np.ceil(template_rows * len(sample) / n)))
    return np.flatnonzero(counts >= cut)


def similarities(
    records: pl.Series, pairs: np.ndarray, spec: M.ShingleSpec, template: np.ndarray, run_tasks: Runner
) -> np.ndarray:
    """Exact Jaccard of each (i, j) row pair, computed in tasks of PAIRS_PER_TASK pairs."""
    if len(pairs) == 0:
        return np.empty(0, dtype=np.float64)

    def tasks() -> Iterator[tuple[Any, ...]]:  # made as they are submitted: texts of two tasks per worker at most
        for start in range(0, len(pairs), PAIRS_PER_TASK):
            part = pairs[start : start + PAIRS_PER_TASK]
            rows, local = np.unique(part, return_inverse=True)
            yield records.gather(rows).to_list(), spec, template, local.reshape(part.shape)

    return np.concatenate(run_tasks(M.pair_similarities, tasks()))


def priority(frame: pl.DataFrame, keep: str) -> np.ndarray:
    """Rank of every row under the keep policy (0 = kept first): row order, length, or human first."""
    table = pl.DataFrame(
        {
            "row": np.arange(frame.height),
            "length": frame.get_column(F.RECORD).str.len_bytes(),
            "synthetic": frame.get_column(F.ORIGIN).fill_null("human") != "human",
        }
    )
    by, descending = {
        "longest": (["length", "row"], [True, False]),
        "human": (["synthetic", "row"], [False, False]),
    }.get(keep, (["row"], [False]))
    order = table.sort(by, descending=descending).get_column("row").to_numpy()
    rank = np.empty(frame.height, dtype=np.int64)
    rank[order] = np.arange(frame.height)
    return rank


def greedy_drops(rank: np.ndarray, pairs: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to drop and, for each, the kept row it duplicates and their similarity.

    Rows are visited best rank first; a row goes when it is similar (a verified pair) to a row already
    kept — its most similar such row is its partner — and stays otherwise. So every dropped row has a
    direct partner at or above the threshold, and a chain A~B~C with A and C unlike keeps C.
    """
    both = np.concatenate([pairs, pairs[:, ::-1]])
    weight = np.concatenate([sims, sims])
    order = np.argsort(both[:, 0], kind="stable")
    source, target, weight = both[order, 0], both[order, 1], weight[order]
    nodes, starts = np.unique(source, return_index=True)
    bounds = np.append(starts, len(source)).tolist()
    targets, weights, ranks = target.tolist(), weight.tolist(), rank.tolist()
    kept: set[int] = set()
    dropped, partner, similarity = [], [], []
    for k in np.argsort(rank[nodes], kind="stable").tolist():
        node = int(nodes[k])
        best, best_sim = -1, -1.0
        for t in range(bounds[k], bounds[k + 1]):
            other, sim = targets[t], weights[t]
            if other in kept and (sim > best_sim or (sim == best_sim and ranks[other] < ranks[best])):
                best, best_sim = other, sim
        if best < 0:
            kept.add(node)
        else:
            dropped.append(node)
            partner.append(best)
            similarity.append(best_sim)
    return np.array(dropped, dtype=np.int64), np.array(partner, dtype=np.int64), np.array(similarity, dtype=np.float64)


def run(frame: pl.DataFrame, config: NearDedupConfig, ctx: Context) -> StageResult:
    n = frame.height
    records = frame.get_column(F.RECORD)
    spec = M.ShingleSpec(config.fields, config.shingle_size, config.min_words)
    bands, rows = M.lsh_params(config.threshold, config.num_perm)
    with task_runner(ctx.workers, n, ctx.pool) as run_tasks:
        ctx.progress.log(f"near_dedup: {n:,} rows, {bands} bands x {rows} rows")
        template = template_buckets(records, spec, config.template_rows, run_tasks)
        tasks = ((chunk, spec, template, config.num_perm, ctx.seed, bands, rows) for chunk in _chunks(records))
        results = run_tasks(M.signature_keys, tasks)
        keys = np.concatenate([k for k, _ in results]) if results else np.zeros((0, bands), np.uint32)
        status = np.concatenate([s for _, s in results]) if results else np.zeros(0, np.int8)
        del results
        compared = np.flatnonzero(status == M.OK)
        candidates, oversized = M.candidate_pairs(keys[compared], compared, MAX_BUCKET)
        del keys
        sims = similarities(records, candidates, spec, template, run_tasks)
        similar = candidates[sims >= config.threshold]
        similar_sims = sims[sims >= config.threshold]
    labels = M.components(n, similar)
    rank = priority(frame, config.keep)
    if config.keep == "all":
        dropped, partner, pair_similarity = (np.empty(0, np.int64),) * 2 + (np.empty(0, np.float64),)
    else:
        dropped, partner, pair_similarity = greedy_drops(rank, similar, similar_sims)

    # Every member of a component shares one CLUSTER: its best-ranked row's cluster, else that row's id.
    ids, clusters = frame.get_column(F.ID), frame.get_column(F.CLUSTER)
    members = np.flatnonzero(np.bincount(labels, minlength=n)[labels] > 1)
    head = np.full(n, n, dtype=np.int64)
    np.minimum.at(head, labels[members], rank[members])
    head_row = np.argsort(rank)[head[labels[members]]]
    cluster_id = clusters.gather(head_row).fill_null(ids.gather(head_row))
    marked = frame.with_columns(clusters.scatter(members, cluster_id).alias(F.CLUSTER))
    is_dropped = np.zeros(n, dtype=bool)
    is_dropped[dropped] = True
    partner_ids = ids.gather(partner)
    details = [
        f"{s:.3f} Jaccard with {p[:12]} ({config.shingle_size}-word shingles)"
        for s, p in zip(pair_similarity.tolist(), partner_ids.to_list())
    ]
    rejected = F.reject(
        marked[dropped], STAGE.name, "near_duplicate", details, duplicate_of=partner_ids, similarity=pair_similarity
    )
    stats = {
        "bands": bands,
        "rows_per_band": rows,
        "miss_probability_at_threshold": M.expected_error(config.threshold, bands, rows),
        "template_shingle_buckets": int(len(template)),
        "compared": int(len(compared)),
        "skipped_short": int((status == M.SHORT).sum()),
        "skipped_template_only": int((status == M.TEMPLATE_ONLY).sum()),
        "candidates": int(len(candidates)),
        "pairs_verified": int(len(candidates)),
        "pairs_similar": int(len(similar)),
        "oversized_buckets": oversized,
        "clusters": int(len(np.unique(labels[members]))),
        "rows_in_clusters": int(len(members)),
        "duplicates": int(len(dropped)),
    }
    return StageResult(kept=marked.filter(pl.Series(~is_dropped)), rejected=rejected, stats=stats)


def _config_from_cli(params: dict[str, Any]) -> NearDedupConfig | None:
    near = {
        "threshold": params.get("near_threshold"),
        "shingle_size": params.get("near_shingle_size"),
        "num_perm": params.get("near_num_perm"),
        "fields": params.get("near_fields"),
        "template_rows": params.get("near_template_rows"),
        "keep": params.get("dedup_keep"),
    }
    given = {k: v for k, v in near.items() if v is not None}
    if not params.get("dedup") and not (given.keys() - {"keep"}):
        return None
    return NearDedupConfig(**given)


STAGE = Stage(
    name="near_dedup",
    version="1",
    kind="global",
    config_cls=NearDedupConfig,
    run=run,
    order=40,
    description="Drop near duplicates: MinHash + LSH over word shingles, verified by exact Jaccard (near_duplicate)",
    cli_options=[
        click.Option(
            ["--near-threshold"], type=click.FloatRange(0, 1, min_open=True), default=None,
            help="Near dedup: Jaccard similarity at or above which rows are near duplicates (default 0.5).",
        ),
        click.Option(["--near-shingle-size"], type=click.IntRange(1, 8), default=None, help="Near dedup: words per shingle (default 2)."),
        click.Option(["--near-num-perm"], type=click.IntRange(16, 1024), default=None, help="Near dedup: MinHash permutations (default 128)."),
        click.Option(
            ["--near-fields"], type=click.Choice(["conversation", "user", "assistant", "all"]), default=None,
            help="Near dedup: text compared (default conversation: every turn but system prompts).",
        ),
        click.Option(
            ["--near-template-rows"], type=click.IntRange(min=0), default=None,
            help="Near dedup: shingles in at least this many rows count as template text and are ignored (default 50, 0 = off).",
        ),
    ],
    config_from_cli=_config_from_cli,
)
