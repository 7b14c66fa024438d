"""JSON Lines reader: bytes in large chunks, one orjson.loads per physical line, every line accounted for.

`pl.read_ndjson` cannot be used: it aborts on the first bad line, and a dataset's bad lines must become
rejected rows (file + line) while the rest of the file goes through. A physical line is what lies between
two b"\\n" (a final line without one counts too); its 1-based number is LINE.

With `workers > 1` a big file is cut into byte ranges at line starts and parsed in a process pool; results
are joined in range order and line numbers made file-global, so the output does not depend on `workers`.
"""

from __future__ import annotations

import gc
import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ftdata.ingest.detect import plan_for_objects
from ftdata.ingest.layouts import LayoutPlan
from ftdata.ingest.options import IngestError, IngestOptions
from ftdata.ingest.rows import FileRows, RowCollector, shift_lines
from ftdata.rowstage import RowStep, merge_step_stats
from ftdata.store import sha256_file
from ftdata.workers import GUARD_HINT, pool_for

BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 16 << 20
# Parallel reading has fixed and per-byte overhead (fresh interpreters importing polars, frames handed back
# as Arrow files); measured here, one process still won on a 200 MB file and two won from ~600 MB.
PARALLEL_MIN_BYTES = 256 << 20
# With a run's shared pool, started and warming before ingest, there is no start-up cost to win back.
SHARED_PARALLEL_MIN_BYTES = 64 << 20
RANGE_BYTES = 32 << 20


def read_jsonl(
    path: Path,
    source: str,
    options: IngestOptions,
    workers: int = 1,
    parallel_min_bytes: int | None = None,
    row_steps: Sequence[RowStep] = (),
    pool: Executor | None = None,
) -> FileRows:
    plan = plan_for_objects(_iter_objects(path), source, options)
    layout = plan.layout if plan else None
    size = path.stat().st_size
    if parallel_min_bytes is None:
        parallel_min_bytes = PARALLEL_MIN_BYTES if pool is None else SHARED_PARALLEL_MIN_BYTES
    if workers > 1 and size >= parallel_min_bytes:
        return _read_parallel(path, source, plan, size, workers, row_steps, pool)
    hasher = hashlib.sha256()
    rows, lines = parse_range(path, source, 0, size, plan, hasher, row_steps)
    return rows.finish(lines, layout, hasher.hexdigest())


def _problem(line: bytes, exc: orjson.JSONDecodeError) -> tuple[str, str]:
    if not line.strip():
        return "blank_line", "the line is empty or whitespace"
    try:
        line.decode()
    except UnicodeDecodeError as bad:
        return "invalid_utf8", f"invalid UTF-8 at byte {bad.start + 1} of the line"
    return "invalid_json", f"{exc.msg} (column {exc.colno})"


def _raw(line: bytes) -> str:
    """The line as text for rejected.jsonl: CR of a CRLF ending dropped, bad bytes shown as \\xNN."""
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", "backslashreplace")


def iter_lines(
    path: Path, start: int, end: int, hasher: hashlib._Hash | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The physical lines in bytes [start, end) of the file (start at a line start), without b"\\n"."""
    pending: list[bytes] = []  # the line still being read, in pieces: a line may span chunks
    remaining = end - start
    at_file_start = start == 0  # until the first line is complete: it may open with a BOM
    with path.open("rb") as fh:
        fh.seek(start)
        while remaining > 0 and (chunk := fh.read(min(chunk_bytes, remaining))):
            remaining -= len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            lines = chunk.split(b"\n")
            if len(lines) == 1:
                pending.append(chunk)
                continue
            if pending:
                lines[0] = b"".join([*pending, lines[0]])
            if at_file_start:
                lines[0] = lines[0].removeprefix(BOM)
                at_file_start = False
            pending = [lines.pop()]
            yield from lines
    last = b"".join(pending)
    if at_file_start:
        last = last.removeprefix(BOM)
    if last:
        yield last


def parse_range(
    path: Path,
    source: str,
    start: int,
    end: int,
    plan: LayoutPlan | None,
    hasher: hashlib._Hash | None = None,
    row_steps: Sequence[RowStep] = (),
) -> tuple[RowCollector, int]:
    """Parse the lines in bytes [start, end) (start at a line start); return the rows and the line count."""
    rows = RowCollector(plan, source, row_steps=row_steps)
    add, reject = rows.add, rows.reject
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    lineno = 0
    gc_enabled = gc.isenabled()
    gc.disable()  # millions of small containers: the cyclic GC would rescan them again and again
    try:
        for lineno, line in enumerate(iter_lines(path, start, end, hasher), 1):
            try:
                obj = loads(line)
            except decode_error as exc:
                reject(lineno, *_problem(line, exc), _raw(line))
                continue
            problem = add(obj, lineno)
            if problem is not None:
                reject(lineno, *problem, _raw(line))
    finally:
        if gc_enabled:
            gc.enable()
    return rows, lineno


def _iter_objects(path: Path) -> Iterator[object]:
    """The parsed JSON values of the file's lines, skipping lines that do not parse (layout detection)."""
    for line in iter_lines(path, 0, path.stat().st_size):
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            continue


def _split(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """Byte ranges of about size/parts each, every one starting at a line start."""
    bounds = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            target = max(size * i // parts, bounds[-1] + 1)
            if target >= size:
                break
            fh.seek(target - 1)  # a line starts at `target` when the byte before it is a newline
            offset = target - 1
            while block := fh.read(1 << 16):
                newline = block.find(b"\n")
                if newline >= 0:
                    offset += newline + 1
                    break
                offset += len(block)
            if offset >= size:
                break
            bounds.append(offset)
    bounds.append(size)
    return list(zip(bounds, bounds[1:]))


def _parse_range_job(
    path: str, source: str, start: int, end: int, plan: LayoutPlan | None, out: str, row_steps: Sequence[RowStep]
) -> tuple[list[str], int, list[dict[str, Any]]]:
    """A worker's share. Its frames go back as Arrow IPC files: pushing tens of MB through the pool's pipe
    costs hundreds of context switches, which on a busy machine took longer than the parsing."""
    rows, lines = parse_range(Path(path), source, start, end, plan, row_steps=row_steps)
    # The newest Arrow flavour keeps polars' string views as they are: no conversion either way.
    newest = pl.CompatLevel.newest()
    files = []
    for name, frame in zip(("kept", "rejected", "stage"), rows.frames(), strict=True):
        files.append(f"{out}/{start}.{name}.arrow")
        frame.write_ipc(files[-1], compression="uncompressed", compat_level=newest)
    return files, lines, rows.row_runner.stats()


def _read_parallel(
    path: Path,
    source: str,
    plan: LayoutPlan | None,
    size: int,
    workers: int,
    row_steps: Sequence[RowStep],
    shared: Executor | None,
) -> FileRows:
    # At least 4 ranges per worker: the workers of a shared pool may still be warming up when the first
    # ranges are handed out, and the main process reads the first range itself meanwhile.
    ranges = _split(path, size, max(4 * workers, -(-size // RANGE_BYTES)))
    parts: list[list[pl.DataFrame]] = [[], [], []]  # kept, rejected, rejected by a row stage
    stats: list[dict[str, Any]] = [{} for _ in row_steps]
    offset = 0

    def add(frames: Sequence[pl.DataFrame], lines: int, range_stats: list[dict[str, Any]]) -> None:
        nonlocal offset, stats
        for part, frame in zip(parts, frames, strict=True):
            part.append(shift_lines(frame, offset))
        stats = merge_step_stats(stats, range_stats)
        offset += lines

    with tempfile.TemporaryDirectory(prefix="ftdata-ingest-") as out:
        try:
            with pool_for(shared, min(workers, len(ranges))) as pool:
                jobs = [
                    pool.submit(_parse_range_job, str(path), source, start, end, plan, out, tuple(row_steps))
                    for start, end in ranges[1:]
                ]
                first, lines = parse_range(path, source, *ranges[0], plan, row_steps=row_steps)
                add(first.frames(), lines, first.row_runner.stats())
                del first
                sha256 = sha256_file(path)  # hashed here while the workers parse
                for job in jobs:  # in range order, so the result does not depend on `workers`
                    files, lines, job_stats = job.result()
                    # Read as bytes, not from the path: polars may memory-map a path, and the files go away.
                    add([pl.read_ipc(Path(file).read_bytes()) for file in files], lines, job_stats)
        except BrokenProcessPool as exc:
            raise IngestError(f"{source}: a worker process died while reading the file ({exc}). {GUARD_HINT}") from exc
    kept, rejected, stage_rejected = (pl.concat(part) for part in parts)
    return FileRows(kept, rejected, offset, plan.layout if plan else None, sha256, stage_rejected, stats)
