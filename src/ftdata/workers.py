"""Worker processes for the CPU-bound parts of a run (reading, MinHash, token counting).

The GIL binds everything here (orjson, numpy on small arrays, tiktoken), so the work goes to processes.
They are spawned, never forked: forking a process that runs polars' thread pool can deadlock. A spawned
worker has to start, import polars and numpy (~0.3 s here) and build its tiktoken encoding (~0.3 s), and
each stage used to pay that again, so a curate run starts one pool at the beginning, warms it (imports, the encoding) while the main process
reads its first file, and hands it to every stage through `Context.pool`; code run without one makes
its own. Scripts that use workers must guard their entry point with `if __name__ == "__main__":`.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

GUARD_HINT = (
    'a script that runs ftdata with workers > 1 must start it under `if __name__ == "__main__":` '
    "(workers are fresh interpreters that import the script)"
)


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def warm(token_specs: tuple[str, ...]) -> None:
    """Run once per worker at the start of a curate run: import what stages will need, build encodings."""
    import ftdata.minhash  # noqa: F401  (numpy and the MinHash code)
    import ftdata.rowstage  # noqa: F401
    from ftdata.tokenizer import warm_counter

    for spec in token_specs:
        warm_counter(spec)


def warm_pool(pool: ProcessPoolExecutor, workers: int, token_specs: tuple[str, ...]) -> None:
    """Start every worker now and let it warm up in the background (the results are not waited for)."""
    for _ in range(workers):
        pool.submit(warm, token_specs)


@contextmanager
def pool_for(shared: Executor | None, workers: int) -> Iterator[Executor]:
    """The run's shared pool when there is one, else a fresh pool closed on exit."""
    if shared is not None:
        yield shared
        return
    with spawn_pool(workers) as pool:
        yield pool


def map_bounded(
    pool: Executor, fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]], workers: int, what: str
) -> Iterator[T]:
    """fn(*task) for each task, results in task order, with at most 2 tasks per worker in flight: the
    caller makes each task's data only when it is submitted, so all of it never exists at once."""
    pending: deque[Future[T]] = deque()
    try:
        for args in tasks:
            pending.append(pool.submit(fn, *args))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as exc:
        # An OSError: the CLI reports it as an operational failure (e.g. a worker killed for memory).
        raise ChildProcessError(
            f"{what}: a worker process died ({exc}). Retry with fewer workers or more memory; {GUARD_HINT}"
        ) from exc
    finally:
        for job in pending:
            job.cancel()
