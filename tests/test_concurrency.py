"""Several processes doing read-modify-write on one key lose no update."""

from __future__ import annotations

import multiprocessing
from typing import Any

from redismem import MemoryStore, VersionConflict
from redismem.connection import connect

PROCESSES = 4
INCREMENTS_EACH = 100


def _increment(url: str, times: int, start: Any, conflicts: Any) -> None:
    store = MemoryStore(connect(url))
    store.get("counters", "hits")  # connect before the race starts
    start.wait()
    done = 0
    while done < times:
        record = store.get("counters", "hits")
        assert record is not None
        try:
            store.put(
                "counters",
                "hits",
                record.value + 1,
                expect_version=record.version,
            )
        except VersionConflict:
            with conflicts.get_lock():
                conflicts.value += 1
            continue
        done += 1


def test_optimistic_writers_in_several_processes_lose_no_update(
    store: MemoryStore, redis_url: str
) -> None:
    store.put("counters", "hits", 0)
    context = multiprocessing.get_context("spawn")
    conflicts = context.Value("i", 0)
    start = context.Barrier(PROCESSES)

    workers = [
        context.Process(
            target=_increment, args=(redis_url, INCREMENTS_EACH, start, conflicts)
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    total = PROCESSES * INCREMENTS_EACH
    final = store.get("counters", "hits")
    assert final is not None
    assert final.value == total
    assert final.version == total + 1

    events = []
    page = store.changes("counters", limit=1000)
    events += page.items
    assert page.next is None
    # One event per successful write, none for a refused one, seq contiguous.
    assert [event.seq for event in events] == list(range(1, total + 2))
    assert [event.value for event in events] == list(range(total + 1))
    assert conflicts.value > 0, "the writers never raced; the test proved nothing"
