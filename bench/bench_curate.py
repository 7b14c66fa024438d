"""End-to-end `curate` benchmark: throughput, per-stage seconds, peak RSS, near-dup precision/recall.

    python bench/bench_curate.py --rows 100000 [--compare-naive]
    python bench/bench_curate.py --data chats.jsonl --truth chats.jsonl.truth.jsonl

Without --data it generates --rows synthetic rows with bench/generate.py (seed --seed) into --workdir. It
then runs `ftdata.pipeline.curate` with ingest (label column `category`), normalize, validate, exact_dedup,
near_dedup, tokens (o200k via the target model) and a stratified, cluster-aware split, and prints:

- wall seconds, rows/s and MB/s over the input, and each stage's seconds (from the run summary);
- peak RSS: this process and its largest worker (getrusage RUSAGE_SELF / RUSAGE_CHILDREN maxima);
- near-duplicate precision and recall against the planted truth, read back from the version's
  rejected.jsonl (`duplicate_of`) and rows.jsonl: a drop is correct when the row it names as kept partner
  belongs to the same planted family (an original with its exact and near copies); recall counts, per
  family, the drops achieved out of the (members - 1) possible, exact drops included;
- with --compare-naive, bench/naive.py on the same file in the same run, and the speed ratio.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
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


def peak_rss_mib() -> tuple[float, float]:
    kib = 1024  # ru_maxrss is in KiB on Linux
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib)


def run(data: Path, truth: Path | None, workdir: Path, workers: int, compare_naive: bool) -> None:
    from ftdata.ingest import IngestOptions
    from ftdata.pipeline import curate

    size_mb = data.stat().st_size / 1e6
    store = workdir / "store"
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    result = curate(inputs=[data], steps=STEPS, dataset="bench", store=store, seed=0,
                    target_model="gpt-4.1-mini", ingest_options=IngestOptions(label_col="category"), workers=workers)
    seconds = time.perf_counter() - started
    summary = result.summary
    rows = summary["stages"][0]["rows_in"]
    self_rss, child_rss = peak_rss_mib()
    print(f"ftdata curate: {rows:,} rows, {size_mb:,.1f} MB in {seconds:.1f} s → {rows / seconds:,.0f} rows/s, "
          f"{size_mb / seconds:.1f} MB/s; peak RSS {self_rss:,.0f} MiB (largest worker {child_rss:,.0f} MiB)")
    print(f"{'stage':<14}{'rows in':>12}{'rows out':>12}{'seconds':>10}")
    for stage in summary["stages"]:
        print(f"{stage['name']:<14}{stage['rows_in']:>12,}{stage['rows_out']:>12,}{stage['seconds']:>10.2f}")
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
