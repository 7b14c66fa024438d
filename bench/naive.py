"""The naive baseline `bench_curate.py --compare-naive` times ftdata against.

What a first script for the same job looks like, in one process: a per-row Python validation loop
(`json.loads` + dict checks), exact dedup through a dict of normalised texts, datasketch `MinHash` fed one
shingle at a time through `update()` and a `MinHashLSH` index queried then extended row by row (same
threshold, permutations and 2-word shingles as ftdata's defaults, no exact verification), per-row
tiktoken `encode` with o200k_base (built offline by `ftdata.tokenizer.get_encoding`, as ftdata does), a
seeded 90/10 split, and the two JSONL files written.

    python bench/naive.py FILE [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

ROLES = {"system", "developer", "user", "assistant", "tool"}
WORD = re.compile(r"\w+")


def valid(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return False
    for message in obj["messages"]:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return False
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            return False
    return obj["messages"][-1]["role"] == "assistant"


def normalised(obj: dict[str, Any]) -> str:
    return " ".join(json.dumps(obj, sort_keys=True).lower().split())


def compared_text(obj: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in obj["messages"] if m["role"] not in ("system", "developer"))


def naive_curate(path: Path, out: Path, threshold: float = 0.5, num_perm: int = 128, seed: int = 0) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    from ftdata.tokenizer import get_encoding

    encoding = get_encoding("o200k_base")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    rows, invalid = [], 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                invalid += 1
                continue
            if valid(obj):
                rows.append(obj)
            else:
                invalid += 1
    timings["read+validate"] = time.perf_counter() - started

    mark = time.perf_counter()
    seen: set[str] = set()
    unique = []
    for obj in rows:
        key = normalised(obj)
        if key not in seen:
            seen.add(key)
            unique.append(obj)
    timings["exact_dedup"] = time.perf_counter() - mark

    mark = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept = []
    for i, obj in enumerate(unique):
        words = WORD.findall(compared_text(obj).lower())
        signature = MinHash(num_perm=num_perm)
        for j in range(max(1, len(words) - 1)):
            signature.update(" ".join(words[j : j + 2]).encode())
        if lsh.query(signature):
            continue
        lsh.insert(str(i), signature)
        kept.append(obj)
    timings["near_dedup"] = time.perf_counter() - mark

    mark = time.perf_counter()
    tokens = []
    for obj in kept:
        total = 3
        for message in obj["messages"]:
            total += 3 + len(encoding.encode(message["content"])) + len(encoding.encode(message["role"]))
        tokens.append(total)
    timings["tokens"] = time.perf_counter() - mark

    mark = time.perf_counter()
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.jsonl").open("w") as train, (out / "validation.jsonl").open("w") as validation:
        for obj in kept:
            (validation if rng.random() < 0.1 else train).write(json.dumps(obj) + "\n")
    timings["split+write"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return {"rows": len(rows) + invalid, "invalid": invalid, "exact": len(rows) - len(unique),
            "near": len(unique) - len(kept), "kept": len(kept), "tokens": sum(tokens), "seconds": timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--out", type=Path, default=Path("naive-out"))
    args = parser.parse_args(argv)
    print(json.dumps(naive_curate(args.file, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
