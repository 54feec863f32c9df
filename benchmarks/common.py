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


def interleaved_rates(
    measured: Callable[[int], object], baseline: Callable[[int], object], count: int
) -> tuple[float, float]:
    """Rates of ``measured(i)`` and ``baseline(i)``, timed op by op, alternating.

    On a shared machine the speed moves within a second; alternating every
    operation exposes both sides to the same moments, so their ratio holds
    steady where rates measured one after the other do not.
    """
    clock = time.perf_counter
    ours = theirs = 0.0
    for i in range(count):
        started = clock()
        measured(i)
        middle = clock()
        baseline(i)
        theirs += clock() - middle
        ours += middle - started
    return count / ours, count / theirs


def median_round(
    rounds: list[tuple[float, float]],
) -> tuple[float, float, float, float]:
    """The round with the median ratio, and the lowest and highest ratio.

    Returns (measured rate, baseline rate, lowest ratio, highest ratio).
    """
    ordered = sorted(rounds, key=lambda pair: pair[0] / pair[1])
    ours, theirs = ordered[len(ordered) // 2]
    ratios = [a / b for a, b in ordered]
    return ours, theirs, ratios[0], ratios[-1]


def report(title: str, rows: list[tuple[str, float, float]]) -> None:
    """Print rows of (name, measured, baseline) with their ratio."""
    print(f"\n{title}")
    print(f"{'what':<44} {'ops/s':>10} {'baseline':>10} {'ratio':>6}")
    for name, measured, baseline in rows:
        ratio = measured / baseline
        print(f"{name:<44} {measured:>10,.0f} {baseline:>10,.0f} {ratio:>6.2f}")
