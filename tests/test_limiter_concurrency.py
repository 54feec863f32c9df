"""Several processes hitting one shared limit: exact admission counts.

Each worker process has its own client and RateLimiter, as separate app
instances would; the test sums what they were admitted.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest

from redismem.connection import connect
from redismem.limiter import Limit, RateLimiter

WORKERS = 4


def _hammer_count(url: str, limit: str, hits: int) -> list[tuple[bool, int]]:
    limiter = RateLimiter(connect(url))
    decisions = [limiter.hit("shared", limit) for _ in range(hits)]
    return [(d.allowed, d.time_ms) for d in decisions]


def _hammer_for(url: str, limit: str, seconds: float) -> list[tuple[bool, int]]:
    limiter = RateLimiter(connect(url))
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        decision = limiter.hit("shared", limit)
        results.append((decision.allowed, decision.time_ms))
    return results


def _run(target: object, args: list[tuple[object, ...]]) -> list[tuple[bool, int]]:
    context = multiprocessing.get_context("fork")
    with context.Pool(WORKERS) as pool:
        per_worker = pool.starmap(target, args, chunksize=1)  # type: ignore[arg-type]
    return [result for results in per_worker for result in results]


@pytest.mark.timeout(60)
def test_processes_sharing_a_fixed_window_are_admitted_exactly_the_limit(
    redis_url: str,
) -> None:
    limit = Limit.parse("fixed_window:50/h")

    results = _run(_hammer_count, [(redis_url, str(limit), 40)] * WORKERS)

    # Windows align to the hour; in the rare run that spans an edge, each
    # window must still have admitted exactly min(limit, attempts in it).
    attempts = Counter(t // limit.period_ms for _, t in results)
    admitted = Counter(t // limit.period_ms for ok, t in results if ok)
    assert len(results) == 160
    for window, tried in attempts.items():
        assert admitted[window] == min(50, tried)


@pytest.mark.timeout(60)
def test_processes_sharing_a_sliding_window_are_admitted_exactly_the_limit(
    redis_url: str,
) -> None:
    results = _run(_hammer_count, [(redis_url, "sliding_window:50/h", 40)] * WORKERS)

    assert sum(ok for ok, _ in results) == 50


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "limit", ["token_bucket:100/s,burst=20", "leaky_bucket:100/s,burst=20"]
)
def test_processes_sharing_a_bucket_never_get_more_than_burst_plus_refill(
    redis_url: str, limit: str
) -> None:
    results = _run(_hammer_for, [(redis_url, limit, 0.6)] * WORKERS)

    times = [t for _, t in results]
    elapsed = (max(times) - min(times)) / 1000
    admitted = sum(ok for ok, _ in results)
    assert len(results) > admitted  # the bucket was really contended
    assert 20 <= admitted <= 20 + 100 * elapsed + 1
