"""Shared pieces of the benchmarks: a private redis-server and timing helpers.

Benchmarks report ratios against a baseline measured in the same run, on the
same server, from the same client, so the machine's speed cancels out. Run
them from the repository root: ``python -m benchmarks.bench_store``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import RedisServer


@contextmanager
def private_redis(*extra: str) -> Iterator[RedisServer]:
    """A redis-server on a free port in a temporary directory, for one run."""
    directory = Path(tempfile.mkdtemp(prefix="redismem-bench-"))
    server = RedisServer(directory, *extra)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


def rate(operation: Callable[[int], object], count: int) -> float:
    """Operations per second of ``operation(i)`` for i in range(count)."""
    started = time.perf_counter()
    for i in range(count):
        operation(i)
    return count / (time.perf_counter() - started)


def best_of_alternating(
    rounds: int, measured: Callable[[], float], baseline: Callable[[], float]
) -> tuple[float, float]:
    """The best of several rounds of each, alternated so drift hits both alike."""
    ours, theirs = 0.0, 0.0
    for _ in range(rounds):
        ours = max(ours, measured())
        theirs = max(theirs, baseline())
    return ours, theirs


def report(title: str, rows: list[tuple[str, float, float]]) -> None:
    """Print rows of (name, measured, baseline) with their ratio."""
    print(f"\n{title}")
    print(f"{'what':<44} {'ops/s':>10} {'baseline':>10} {'ratio':>6}")
    for name, measured, baseline in rows:
        ratio = measured / baseline
        print(f"{name:<44} {measured:>10,.0f} {baseline:>10,.0f} {ratio:>6.2f}")
