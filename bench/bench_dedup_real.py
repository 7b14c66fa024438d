"""Near-dedup precision on real, template-heavy data: the GPTeacher Toolformer rows.

    python bench/bench_dedup_real.py [--data ../shared/data] [--samples 12] [--template-rows 50 0]

The 7,673 alpaca rows of `gpteacher_toolformer_dedupe_only.json` open their instruction with one of 44 long
tool preambles (up to 1,183 rows share one), then a short task and a one-line answer — exactly the case where
rows sharing a template must not be taken for near copies. Their authors' own cleaning (a 0.9 similarity cut,
not MinHash) kept 5,959 rows: `gpteacher_toolformer_similarity_0.9.json`.

For each `--template-rows` value (and the default near-dedup config otherwise) this prints how many rows,
pairs and clusters near_dedup flags, how that compares with the authors' removals, and samples of flagged
pairs — the lowest-similarity ones first, where false positives would show.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import polars as pl

from ftdata import frame as F
from ftdata.ingest import IngestOptions, ingest
from ftdata.stage import Context
from ftdata.stages import exact_dedup, near_dedup, normalize

DEDUPE_ONLY = "gpteacher_toolformer_dedupe_only.json"
AUTHORS = "gpteacher_toolformer_similarity_0.9.json"


def alpaca_key(row: dict[str, str]) -> tuple[str, str, str]:
    return row["instruction"].strip(), row["input"].strip(), row["output"].strip()


def task_line(record: str) -> str:
    """The row without its tool preamble: last instruction line | input | answer."""
    messages = json.loads(record)["messages"]
    user, answer = messages[0]["content"], messages[-1]["content"]
    return f"{user.splitlines()[-1][:90]} || {answer[:90]}"


def run_once(data: Path, template_rows: int, samples: int) -> None:
    rows = json.loads((data / DEDUPE_ONLY).read_text())
    authors_kept = {alpaca_key(r) for r in json.loads((data / AUTHORS).read_text())}
    frame = ingest([data / DEDUPE_ONLY], IngestOptions(layout="alpaca")).frame
    ctx = Context(workers=2)
    frame = normalize.STAGE.run(frame, normalize.STAGE.config_cls(), ctx).kept
    exact = exact_dedup.STAGE.run(frame, exact_dedup.ExactDedupConfig(), ctx)
    started = time.perf_counter()
    config = near_dedup.NearDedupConfig(template_rows=template_rows)
    result = near_dedup.STAGE.run(exact.kept, config, ctx)
    seconds = time.perf_counter() - started

    key_of_line = {i + 1: alpaca_key(r) for i, r in enumerate(rows)}
    line_of_id = dict(zip(frame.get_column(F.ID).to_list(), frame.get_column(F.LINE).to_list()))
    record_of_id = dict(zip(frame.get_column(F.ID).to_list(), frame.get_column(F.RECORD).to_list()))
    rejected = result.rejected
    dropped_lines = {line_of_id[i] for i in rejected.get_column(F.ID).to_list()}
    authors_removed = {line for line, key in key_of_line.items() if key not in authors_kept}
    both = dropped_lines & authors_removed
    stats = result.stats
    print(f"\n== near_dedup {config.model_dump()} on {exact.kept.height:,} rows "
          f"({exact.rejected.height} exact duplicates removed first), {seconds:.1f} s")
    print(f"flagged: {stats['duplicates']:,} rows dropped in {stats['clusters']:,} clusters "
          f"({stats['rows_in_clusters']:,} rows); candidate pairs {stats['candidates']:,}, "
          f"verified similar {stats['pairs_similar']:,}; template shingle buckets {stats['template_shingle_buckets']:,}; "
          f"not compared: {stats['skipped_short']} short, {stats['skipped_template_only']} template-only")
    print(f"authors' 0.9 cleaning removed {len(authors_removed):,} rows; we drop {len(dropped_lines):,}: "
          f"{len(both):,} of ours are among theirs ({len(both) / max(1, len(dropped_lines)):.1%}), "
          f"we catch {len(both) / max(1, len(authors_removed)):.1%} of theirs")
    sims = rejected.get_column(F.SIMILARITY).to_list()
    ids = rejected.get_column(F.ID).to_list()
    partners = rejected.get_column(F.DUPLICATE_OF).to_list()
    flagged = sorted(zip(sims, ids, partners))
    picks = flagged[: samples // 2] + random.Random(0).sample(flagged, min(len(flagged), samples - samples // 2))
    print(f"samples (first {samples // 2} = lowest similarity, then random):")
    for sim, rid, partner in picks:
        print(f"  {sim:.2f}  dropped: {task_line(record_of_id[rid])}")
        print(f"        kept:    {task_line(record_of_id[partner])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--template-rows", type=int, nargs="+", default=[50, 0])
    args = parser.parse_args(argv)
    pl.Config.set_tbl_width_chars(200)
    for template_rows in args.template_rows:
        run_once(args.data, template_rows, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
