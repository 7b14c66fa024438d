"""End-to-end `curate` benchmark: throughput, per-stage seconds, peak RSS, near-dup precision/recall.

    python bench/bench_curate.py --rows 100000 [--compare-naive]
    python bench/bench_curate.py --data chats.jsonl --truth chats.jsonl.truth.jsonl

Without --data it generates --rows synthetic rows with bench/generate.py (seed --seed) into --workdir. It
then runs `ftdata.pipeline.curate` with ingest (label column `category`), normalize, validate, exact_dedup,
near_dedup, tokens (o200k via the target model) and a stratified, cluster-aware split, and prints:

- wall seconds, rows/s and MB/s over the input, and each stage's seconds (from the run summary);
- peak RSS sampled from /proc: this process, its largest worker, and all of them together; CPU seconds
  of all processes, and the load average (other work on the machine changes every figure);
- near-duplicate precision and recall against the planted truth, read back from the version's
  rejected.jsonl (`duplicate_of`) and rows.jsonl: a drop is correct when the row it names as kept partner
  belongs to the same planted family (an original with its exact and near copies); recall counts, per
  family, the drops achieved out of the (members - 1) possible, exact drops included;
- with --compare-naive, bench/naive.py on the same file in the same run, and the speed ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402  (bench/ is not a package)
import naive  # noqa: E402

STEPS: list[tuple[str, dict[str, Any]]] = [
    ("exact_dedup", {}),
    ("near_dedup", {}),
    ("tokens", {}),
    ("split", {"stratify": True}),
]


def families(truth: Path) -> dict[int, int]:
    """Line → family id (the family's smallest line): planted originals joined with all their copies."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    with truth.open("rb") as fh:
        for line in fh:
            planted = orjson.loads(line)
            a, b = root(planted["original"]), root(planted["copy"])
            parent[max(a, b)] = min(a, b)
    return {x: root(x) for x in list(parent)}


def quality(version_path: Path, truth: Path) -> dict[str, Any]:
    family = families(truth)
    # Rows with identical content share an id (e.g. a reordered copy of a one-sentence text), so an id maps
    # to the families of all its lines.
    families_of: dict[str, set[int]] = defaultdict(set)
    with (version_path / "rows.jsonl").open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            families_of[row["id"]].add(family.get(row["line"], -row["line"]))
    drops: list[tuple[str, int, str]] = []
    with (version_path / "rejected.jsonl").open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            families_of[row["row_id"]].add(family.get(row["line"], -row["line"]))
            if row["reason"] in ("near_duplicate", "exact_duplicate"):
                drops.append((row["reason"], row["line"], row["duplicate_of"]))
    dropped_in: dict[int, int] = defaultdict(int)
    dropped_lines: set[int] = set()
    correct = {"near_duplicate": 0, "exact_duplicate": 0}
    total = {"near_duplicate": 0, "exact_duplicate": 0}
    for reason, line, partner in drops:
        f_row = family.get(line, -line)
        total[reason] += 1
        if f_row in families_of[partner]:
            correct[reason] += 1
            dropped_in[f_row] += 1
            dropped_lines.add(line)
    # Per planted kind: a pair counts as caught when its original or its copy went as a duplicate of its family.
    caught: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with truth.open("rb") as fh:
        for line in fh:
            planted = orjson.loads(line)
            counts = caught[planted["kind"]]
            counts[0] += planted["original"] in dropped_lines or planted["copy"] in dropped_lines
            counts[1] += 1
    size: dict[int, int] = defaultdict(int)
    for f in family.values():
        size[f] += 1
    possible = sum(n - 1 for n in size.values())
    achieved = sum(min(size[f] - 1, n) for f, n in dropped_in.items())
    return {
        "near_precision": correct["near_duplicate"] / max(1, total["near_duplicate"]),
        "exact_precision": correct["exact_duplicate"] / max(1, total["exact_duplicate"]),
        "recall": achieved / max(1, possible),
        "near_dropped": total["near_duplicate"],
        "exact_dropped": total["exact_duplicate"],
        "planted_drops_possible": possible,
        "caught_by_kind": {kind: round(n / seen, 4) for kind, (n, seen) in sorted(caught.items())},
    }


class MemorySampler:
    """Peak RSS of this process, of its largest worker, and of all of them together, sampled every 20 ms
    from /proc (Linux). getrusage's RUSAGE_CHILDREN maximum is no use here: a spawned worker is forked
    first, and until it execs it counts the parent's whole resident set as its own."""

    def __init__(self) -> None:
        self.main = self.worker = self.total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss_mib(pid: int | str) -> float:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:  # the process just ended
            return 0.0

    def _children(self) -> list[str]:
        pids: list[str] = []
        for tasks in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
            try:
                pids.extend(tasks.read_text().split())
            except OSError:
                continue
        return pids

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            main = self._rss_mib(os.getpid())
            workers = [self._rss_mib(pid) for pid in self._children()]
            self.main = max(self.main, main)
            self.worker = max(self.worker, *workers, 0.0)
            self.total = max(self.total, main + sum(workers))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """CPU time of this process and of its workers that have ended (user + system)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(data: Path, truth: Path | None, workdir: Path, workers: int, compare_naive: bool) -> None:
    from ftdata.ingest import IngestOptions
    from ftdata.pipeline import curate

    size_mb = data.stat().st_size / 1e6
    store = workdir / "store"
    shutil.rmtree(store, ignore_errors=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with MemorySampler() as memory:
        result = curate(inputs=[data], steps=STEPS, dataset="bench", store=store, seed=0, target_model="gpt-4.1-mini",
                        ingest_options=IngestOptions(label_col="category"), workers=workers)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    summary = result.summary
    rows = summary["stages"][0]["rows_in"]
    print(f"ftdata curate: {rows:,} rows, {size_mb:,.1f} MB in {seconds:.1f} s → {rows / seconds:,.0f} rows/s, "
          f"{size_mb / seconds:.1f} MB/s; {cpu:.1f} CPU-s (all processes)")
    print(f"peak RSS: main process {memory.main:,.0f} MiB, largest worker {memory.worker:,.0f} MiB, "
          f"all processes together {memory.total:,.0f} MiB")
    print(f"{'stage':<14}{'rows in':>12}{'rows out':>12}{'seconds':>10}")
    for stage in summary["stages"]:
        took = "  in ingest" if stage.get("in_ingest") else f"{stage['seconds']:>10.2f}"
        print(f"{stage['name']:<14}{stage['rows_in']:>12,}{stage['rows_out']:>12,}{took:>10}")
    write = seconds - sum(s["seconds"] for s in summary["stages"])
    print(f"{'write+other':<14}{'':>24}{write:>10.2f}")
    near = next(s for s in result.reports if s.name == "near_dedup").stats
    print(f"near_dedup stats: {near}")
    print(f"rejected by reason: {summary['rejected_by_reason']}")
    if truth is not None:
        q = quality(result.version.path, truth)
        print(f"planted duplicates: near precision {q['near_precision']:.4f} ({q['near_dropped']:,} near drops), "
              f"exact precision {q['exact_precision']:.4f} ({q['exact_dropped']:,}), recall {q['recall']:.4f} "
              f"of {q['planted_drops_possible']:,} possible drops; pairs caught by kind {q['caught_by_kind']}")
    if compare_naive:
        out = workdir / "naive-out"
        naive_result = naive.naive_curate(data, out)
        print(f"load average after the baseline: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ratio = naive_result["seconds"]["total"] / seconds
        print(f"naive baseline: {naive_result['seconds']['total']:.1f} s "
              f"({rows / naive_result['seconds']['total']:,.0f} rows/s) — ftdata is {ratio:.1f}x faster")
        print(f"naive per step (s): { {k: round(v, 1) for k, v in naive_result['seconds'].items()} }; "
              f"kept {naive_result['kept']:,}, exact {naive_result['exact']:,}, near {naive_result['near']:,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate when --data is not given")
    parser.add_argument("--data", type=Path, default=None, help="an existing JSONL (skips generation)")
    parser.add_argument("--truth", type=Path, default=None, help="its planted-duplicate truth file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where data and the store go (default: a temp dir)")
    parser.add_argument("--compare-naive", action="store_true", help="also time bench/naive.py on the same file")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ftdata-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data, truth = args.data, args.truth
    if data is None:
        data = workdir / f"chats-{args.rows}.jsonl"
        truth = data.with_name(data.name + ".truth.jsonl")
        if not (data.exists() and truth.exists()):
            started = time.perf_counter()
            generate.generate(args.rows, data, truth, args.seed)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s → {data}")
    run(data, truth, workdir, args.workers, args.compare_naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
