"""near_dedup: MinHash + LSH near-duplicate removal (`near_duplicate`), verified by exact Jaccard.

What is compared: the words of the messages `fields` selects — by default every turn except system and
developer prompts, which many distinct rows share — as sets of `shingle_size`-word shingles.

Template text: a shingle found in at least `template_rows` rows is treated as template (a long shared
instruction, a tool preamble, a stock greeting) and left out of the sets, so rows that merely share a
template are compared on what differs. Document frequency is counted on all rows up to 50,000, on an evenly
spaced sample above that. The cost: a family of more than `template_rows` near-copies of one text looks
like a template and is not caught (raise `template_rows`, or 0 turns this off).

Steps: signatures of every row (vectorised numpy MinHash, in worker processes), LSH banding with
bands x rows derived from the threshold (most rows per band that still make a pair at the threshold a
candidate with probability >= 0.98), exact Jaccard of every candidate pair, union-find over the pairs at or
above `threshold`. Per cluster one row is kept (`keep`: first, longest, human over synthetic — or `all`
to keep every row and only mark clusters); the others are rejected with DUPLICATE_OF (the kept row) and
SIMILARITY (their exact Jaccard with it; a row joined through a chain of near copies can be below the
threshold, its DETAIL says so). Every member gets CLUSTER = the kept row's cluster or id, which the split
stage keeps together. Rows with fewer than `min_words` words, or fewer than 5 non-template shingles, are
not compared (counted in the stats).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import click
import numpy as np
import polars as pl
from pydantic import Field

from ftdata import frame as F
from ftdata import minhash as M
from ftdata.stage import Context, Stage, StageConfig, StageResult

TEMPLATE_SAMPLE_ROWS = 20_000
CHUNK_ROWS = 5_000
PARALLEL_MIN_ROWS = 20_000
MAX_BUCKET = 200
PAIRS_PER_TASK = 20_000
T = TypeVar("T")


class NearDedupConfig(StageConfig):
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="Jaccard similarity of shingle sets at or above which rows are near duplicates"
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
def task_runner(workers: int, rows: int) -> Iterator[Runner]:
    """Run task functions in a pool of fresh worker processes when that pays off, else in this process.

    At most two tasks per worker are in flight, so the parent never holds every chunk's text at once.
    """
    if workers <= 1 or rows < PARALLEL_MIN_ROWS:
        yield lambda fn, tasks: [fn(*args) for args in tasks]
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that runs polars threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:

        def run_all(fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]]) -> list[T]:
            results: list[T] = []
            pending: list[Future[T]] = []
            try:
                for args in tasks:
                    pending.append(pool.submit(fn, *args))
                    if len(pending) >= 2 * workers:
                        results.append(pending.pop(0).result())
                results.extend(job.result() for job in pending)
            except BrokenProcessPool as exc:
                raise RuntimeError(
                    f"near_dedup: a worker process died ({exc}). A script that runs ftdata with workers > 1 "
                    'must start it under `if __name__ == "__main__":`'
                ) from exc
            return results

        yield run_all


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
    tasks = []
    for start in range(0, len(pairs), PAIRS_PER_TASK):
        part = pairs[start : start + PAIRS_PER_TASK]
        rows, local = np.unique(part, return_inverse=True)
        tasks.append((records.gather(rows).to_list(), spec, template, local.reshape(part.shape)))
    return np.concatenate(run_tasks(M.pair_similarities, tasks))


def choose_kept(frame: pl.DataFrame, labels: np.ndarray, keep: str) -> np.ndarray:
    """Per row, the index of the row its cluster keeps (rows outside clusters point at themselves)."""
    table = pl.DataFrame(
        {
            "label": labels,
            "row": np.arange(frame.height),
            "length": frame.get_column(F.RECORD).str.len_bytes(),
            "synthetic": frame.get_column(F.ORIGIN).fill_null("human") != "human",
        }
    )
    by, descending = {
        "longest": (["length", "row"], [True, False]),
        "human": (["synthetic", "row"], [False, False]),
    }.get(keep, (["row"], [False]))
    kept = table.select(pl.col("row").sort_by(by, descending=descending).first().over("label"))
    return kept.to_series().to_numpy()


def run(frame: pl.DataFrame, config: NearDedupConfig, ctx: Context) -> StageResult:
    n = frame.height
    records = frame.get_column(F.RECORD)
    spec = M.ShingleSpec(config.fields, config.shingle_size, config.min_words)
    bands, rows = M.lsh_params(config.threshold, config.num_perm)
    with task_runner(ctx.workers, n) as run_tasks:
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
        labels = M.components(n, similar)
        kept_of = choose_kept(frame, labels, config.keep)
        in_cluster = np.bincount(labels, minlength=n)[labels] > 1
        dropped = np.flatnonzero(in_cluster & (kept_of != np.arange(n))) if config.keep != "all" else np.empty(0, np.int64)
        partner = kept_of[dropped]
        # Similarity of each dropped row with its kept row: known when that pair was verified, else computed.
        known = dict(zip((candidates[:, 0] << 32 | candidates[:, 1]).tolist(), sims.tolist()))
        wanted = np.stack([np.minimum(dropped, partner), np.maximum(dropped, partner)], axis=1)
        packed = (wanted[:, 0] << 32 | wanted[:, 1]).tolist()
        missing = np.array([i for i, key in enumerate(packed) if key not in known], dtype=np.int64)
        extra = similarities(records, wanted[missing], spec, template, run_tasks) if len(missing) else np.empty(0)
    for i, value in zip(missing.tolist(), extra.tolist()):
        known[packed[i]] = value
    pair_similarity = np.array([known[key] for key in packed], dtype=np.float64)

    ids, clusters = frame.get_column(F.ID), frame.get_column(F.CLUSTER)
    members = np.flatnonzero(in_cluster)
    cluster_id = clusters.gather(kept_of[members]).fill_null(ids.gather(kept_of[members]))
    marked = frame.with_columns(clusters.scatter(members, cluster_id).alias(F.CLUSTER))
    is_dropped = np.zeros(n, dtype=bool)
    is_dropped[dropped] = True
    partner_ids = ids.gather(partner)
    details = [
        f"{s:.3f} Jaccard with {p[:12]} ({config.shingle_size}-word shingles)"
        + ("" if s >= config.threshold else "; joined to its cluster through other near copies")
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
