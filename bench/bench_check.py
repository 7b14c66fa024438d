"""How long `ftdata check` takes on a 10,000-line JSONL, beyond interpreter start.

    python bench/bench_check.py [--rows 10000] [--repeat 5]

Writes a realistic file (support chats, some with tool calls and weights, 1% broken rows), then times
`python -m ftdata.check FILE` and `python -c pass` as subprocesses, best of --repeat each. The difference
is the work a pre-commit user waits for: imports, ingest, normalize, validate and printing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def example(i: int) -> dict[str, Any]:
    user = {"role": "user", "content": f"Hi, my order #{10_000 + i} has not arrived yet. Can you check it?"}
    answer = {"role": "assistant", "content": f"Sorry about that! Order #{10_000 + i} left our warehouse "
              "yesterday and should arrive within two working days."}
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a friendly support agent."}, user]
    if i % 5 == 0:
        call_id = f"call_{i}"
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": 10_000 + i})}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": '{"status": "in_transit"}'})
    if i % 7 == 0:
        messages += [{"role": "assistant", "content": "Let me look.", "weight": 0},
                     {"role": "user", "content": "Thanks."}]
    messages.append(answer)
    if i % 100 == 99:  # the kind of mistakes check exists to catch
        messages[-1] = {"role": "assistant", "content": "  ", "weight": 2}
    return {"messages": messages}


def best_of(cmd: list[str], repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return min(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.jsonl"
        path.write_text("".join(json.dumps(example(i)) + "\n" for i in range(args.rows)), encoding="utf-8")
        size = path.stat().st_size
        baseline, _ = best_of([sys.executable, "-c", "pass"], args.repeat)
        total, code = best_of([sys.executable, "-m", "ftdata.check", str(path)], args.repeat)
    print(f"file:               {args.rows:,} lines, {size / 1e6:.1f} MB")
    print(f"python -c pass:     {baseline * 1000:7.0f} ms")
    print(f"ftdata check FILE:  {total * 1000:7.0f} ms (exit {code})")
    print(f"work beyond start:  {(total - baseline) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
