"""The shared worker pool: results in order, bounded look-ahead, a dead worker reported plainly, and a run
that uses one pool for every stage gives the same version as a run without workers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftdata import pipeline
from ftdata.ingest import IngestOptions, jsonl
from ftdata.pipeline import curate
from ftdata.stages import near_dedup
from ftdata.workers import map_bounded, spawn_pool
from ftdata import tokenizer


def test_results_come_in_task_order_with_at_most_two_tasks_per_worker_in_flight() -> None:
    made: list[int] = []
    taken: list[int] = []

    def tasks() -> Iterator[tuple[int, int]]:
        for i in range(12):
            assert len(made) - len(taken) <= 4  # 2 workers x 2 tasks: a task's data is made only when needed
            made.append(i)
            yield 2, i

    with spawn_pool(2) as pool:
        for result in map_bounded(pool, pow, tasks(), 2, "test"):
            taken.append(result)
    assert taken == [2**i for i in range(12)]


def test_a_worker_that_dies_is_a_plain_error_naming_the_stage() -> None:
    with spawn_pool(2) as pool, pytest.raises(ChildProcessError, match=r"near_dedup: a worker process died.*__main__"):
        list(map_bounded(pool, os._exit, [(3,)], 2, "near_dedup"))


def chats(n: int) -> Iterator[str]:
    for i in range(n):
        base = f"how do I export invoice number {i % 40} to a spreadsheet and keep the currency column intact"
        yield json.dumps({
            "messages": [
                {"role": "user", "content": base + (" please" if i % 3 else "")},
                # Every 50th reply is empty: validate rejects it inside the parallel reader.
                {"role": "assistant", "content": "" if i % 50 == 7 else f"Open invoice {i % 40}, choose Export, then CSV. Row {i // 40} keeps the currency."},
            ],
            "category": f"c{i % 4}",
        })


def test_one_shared_pool_for_ingest_near_dedup_and_tokens_gives_the_in_process_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(chats(400)) + "\n", encoding="utf-8")
    steps: list[tuple[str, dict[str, Any]]] = [("exact_dedup", {}), ("near_dedup", {}), ("tokens", {}), ("split", {"stratify": True})]
    options = IngestOptions(label_col="category")
    alone = curate([data], steps, store=tmp_path / "alone", workers=1, ingest_options=options)

    # Thresholds down so that 400 rows take every parallel path: the pool, parallel reading, MinHash and
    # Jaccard tasks, token counting.
    monkeypatch.setattr(pipeline, "SHARED_POOL_MIN_BYTES", 0)
    monkeypatch.setattr(jsonl, "SHARED_PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(near_dedup, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(near_dedup, "CHUNK_ROWS", 50)
    monkeypatch.setattr(tokenizer, "PARALLEL_MIN_BYTES", 0)
    pids: set[int] = set()
    real_pool = pipeline.shared_pool

    def watched_pool(*args: Any) -> Any:
        pool = real_pool(*args)
        assert pool is not None
        pids.update(pool.submit(os.getpid).result() for _ in range(4))
        return pool

    monkeypatch.setattr(pipeline, "shared_pool", watched_pool)
    pooled = curate([data], steps, store=tmp_path / "pooled", workers=2, ingest_options=options)

    assert pids and os.getpid() not in pids
    assert pooled.version.version == alone.version.version
    for name in ("train.jsonl", "validation.jsonl", "rejected.jsonl", "rows.jsonl"):
        assert (pooled.version.path / name).read_bytes() == (alone.version.path / name).read_bytes(), name
    stages = {s["name"]: s for s in pooled.manifest["stages"]}
    assert stages["near_dedup"]["rejected"] > 0  # the data has near duplicates for the pool to find
    assert stages["validate"]["rejected_by_reason"] == {"empty_content": 8}
