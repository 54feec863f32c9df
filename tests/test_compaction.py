"""Log compaction: what it keeps, when it runs, what it makes stale (item 5)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from redismem import CompactionPolicy, MemoryStore, StaleToken
from redismem.compaction import MANUAL_ONLY
from redismem.keys import FeedKeys
from tests.feed_helpers import DEADLINE, start_writer


def log_events(client: Any, namespace: str) -> list[tuple[str, str, int]]:
    """(key, op, seq) of every entry in the log, compacted prefix included."""
    entries = client.xrange(FeedKeys(namespace).log)
    return [
        (fields[b"key"].decode(), fields[b"op"].decode(), int(fields[b"seq"]))
        for _, fields in entries
    ]


def test_compact_keeps_only_the_latest_event_of_every_live_key(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for version in range(5):
        for key in ("a", "b", "c"):
            store.put("shrink", key, version)

    report = store.compact("shrink")

    assert log_events(client, "shrink") == [
        ("a", "update", 13),
        ("b", "update", 14),
        ("c", "update", 15),
    ]
    assert (report.folded, report.compacted_seq, report.floor) == (15, 15, 12)
    assert store.replay("shrink") == {r.key: r for r in store.list("shrink").items}


def test_tombstones_stay_for_their_retention_then_go(client: Any) -> None:
    keep_long = MemoryStore(client, compaction=MANUAL_ONLY)
    keep_long.put("graves", "a", 1)
    keep_long.put("graves", "b", 1)
    keep_long.delete("graves", "a")

    keep_long.compact("graves")
    kept = log_events(client, "graves")
    no_retention = CompactionPolicy(
        max_length=0, max_age_ms=0, tombstone_retention_ms=0
    )
    report = MemoryStore(client, compaction=no_retention).compact("graves")

    assert kept == [("b", "create", 2), ("a", "delete", 3)]
    assert log_events(client, "graves") == [("b", "create", 2)]
    assert report.tombstones_removed == 1
    assert keep_long.replay("graves").keys() == {"b"}


def test_automatic_compaction_keeps_the_log_bounded(client: Any) -> None:
    policy = CompactionPolicy(max_length=20, batch=5)
    store = MemoryStore(client, compaction=policy)

    for i in range(400):
        store.put("bounded", f"k{i % 10}", i)

    # At most: one event per key in the compacted prefix, plus the tail.
    assert client.xlen(FeedKeys("bounded").log) <= 10 + policy.max_length
    assert store.replay("bounded") == {r.key: r for r in store.list("bounded").items}


def test_automatic_compaction_folds_events_older_than_the_age_threshold(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=CompactionPolicy(max_age_ms=50))
    for i in range(5):
        store.put("aging", "k", i)

    # Let the five events age past the threshold (Redis time moves on).
    time.sleep(0.1)
    store.put("aging", "k", 5)

    assert log_events(client, "aging")[0] == ("k", "update", 5)
    assert store.stats("aging")[0].compacted_seq == 5


def test_the_age_threshold_holds_again_for_events_written_after_a_compaction(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=CompactionPolicy(max_age_ms=50))
    for i in range(3):
        store.put("aging", "k", i)
    time.sleep(0.1)  # past the threshold (Redis time moves on)
    store.put("aging", "k", 3)
    assert store.stats("aging")[0].compacted_seq == 3

    for i in range(4, 7):
        store.put("aging", "k", i)
    assert store.stats("aging")[0].compacted_seq == 3  # nothing old enough yet
    time.sleep(0.1)
    store.put("aging", "k", 7)

    assert store.stats("aging")[0].compacted_seq == 7
    assert store.replay("aging")["k"].value == 7


def test_changes_from_the_start_skip_the_compacted_prefix(client: Any) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for i in range(4):
        store.put("prefix", "k", i)
    store.compact("prefix")
    store.put("prefix", "k", 4)

    assert [e.seq for e in store.changes("prefix").items] == [5]


def test_a_token_behind_removed_events_is_stale_and_one_after_them_is_not(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    store.put("behind", "a", 1)
    early = store.changes("behind").items[0].token
    store.put("behind", "b", 1)
    store.put("behind", "b", 2)
    late = store.changes("behind").items[-1].token
    store.compact("behind")  # removes seq 2, superseded by seq 3
    store.put("behind", "b", 3)

    with pytest.raises(StaleToken, match="compacted"):
        store.changes("behind", after=early)
    assert [e.seq for e in store.changes("behind", after=late).items] == [4]


def test_compaction_beside_concurrent_writers_loses_no_record(
    client: Any, redis_url: str
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    writers = [start_writer(redis_url, "contended", 150, keys=7) for _ in range(2)]

    while any(writer.is_alive() for writer in writers):
        store.compact("contended")
    for writer in writers:
        writer.join(DEADLINE)
    store.compact("contended")

    assert all(writer.exitcode == 0 for writer in writers)
    assert store.replay("contended") == {
        r.key: r for r in store.list("contended").items
    }
    assert sorted(key for key, _, _ in log_events(client, "contended")) == [
        f"k{i}" for i in range(7)
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_length": -1},
        {"max_age_ms": 1.5},
        {"tombstone_retention_ms": True},
        {"batch": 0},
        {"batch": 20_000},
    ],
)
def test_a_bad_compaction_policy_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CompactionPolicy(**bad)


def test_stats_report_each_namespace_log(client: Any) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for i in range(3):
        store.put("stats:a", "k", i)
    store.put("stats:b", "k", 0)
    store.put("other", "k", 0)
    store.compact("stats:a")

    stats = {s.namespace: s for s in store.stats("stats:*")}

    assert stats.keys() == {"stats:a", "stats:b"}
    a = stats["stats:a"]
    assert (a.events, a.first_seq, a.last_seq, a.compacted_seq, a.records) == (
        1,
        3,
        3,
        3,
        1,
    )
    assert a.epoch and a.memory is not None and a.memory > 0


def test_put_many_past_the_threshold_runs_one_batch_per_namespace(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=CompactionPolicy(max_length=20, batch=10))
    for i in range(20):
        store.put("many", f"k{i % 4}", i)
    assert client.hget(FeedKeys("many").meta, "runs") in (b"0", None)

    store.put_many([("many", f"k{i % 4}", i) for i in range(50)])

    # Each of the 50 writes reported compaction due; one batch ran.
    assert client.hget(FeedKeys("many").meta, "runs") == b"1"
    assert store.stats("many")[0].compacted_seq == 10
