"""MemoryStore against real Redis, standalone and cluster."""

from __future__ import annotations

from typing import Any

import pytest
from redis.cluster import RedisCluster

from redismem import (
    MemoryStore,
    RecordExists,
    RecordNotFound,
    StaleToken,
    VersionConflict,
)
from redismem.keys import NamespaceKeys


def test_put_creates_a_record_at_version_one(store: MemoryStore) -> None:
    record = store.put("users", "alice", {"name": "Alice"})

    assert record.version == 1
    assert record.value == {"name": "Alice"}
    assert record.created == record.updated
    assert store.get("users", "alice") == record


def test_put_on_an_existing_key_bumps_the_version_and_keeps_created(
    store: MemoryStore,
) -> None:
    first = store.put("users", "alice", 1)
    second = store.put("users", "alice", 2)

    assert second.version == 2
    assert second.created == first.created
    assert second.updated >= first.updated
    assert store.get("users", "alice") == second


def test_get_of_a_missing_key_returns_none(store: MemoryStore) -> None:
    assert store.get("users", "nobody") is None


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -7, 2**62, 1.5, 1e-300, "text", "ünïcödé ✓", [], {}, {"a": [{}]}],
)
def test_any_json_value_round_trips_exactly(store: MemoryStore, value: Any) -> None:
    store.put("values", "k", value)

    assert store.get("values", "k").value == value  # type: ignore[union-attr]
    assert store.changes("values").items[0].value == value


def test_create_refuses_an_existing_key_and_writes_nothing(
    store: MemoryStore, client: Any
) -> None:
    store.create("users", "alice", 1)

    with pytest.raises(RecordExists) as refused:
        store.create("users", "alice", 2)

    assert (refused.value.namespace, refused.value.key) == ("users", "alice")
    assert refused.value.actual == 1
    assert store.get("users", "alice").value == 1  # type: ignore[union-attr]
    assert client.xlen(NamespaceKeys("users").log) == 1


def test_update_refuses_a_missing_key_and_writes_nothing(
    store: MemoryStore, client: Any
) -> None:
    with pytest.raises(RecordNotFound) as refused:
        store.update("users", "ghost", 1)

    assert refused.value.key == "ghost"
    assert store.get("users", "ghost") is None
    assert client.exists(NamespaceKeys("users").log) == 0


def test_update_changes_an_existing_record(store: MemoryStore) -> None:
    store.create("users", "alice", 1)

    assert store.update("users", "alice", 2).version == 2


def test_a_version_mismatch_raises_and_writes_nothing(
    store: MemoryStore, client: Any
) -> None:
    store.put("users", "alice", 1)
    store.put("users", "alice", 2)

    with pytest.raises(VersionConflict) as refused:
        store.put("users", "alice", 3, expect_version=1)

    error = refused.value
    assert (error.namespace, error.key, error.expected, error.actual) == (
        "users",
        "alice",
        1,
        2,
    )
    assert store.get("users", "alice").value == 2  # type: ignore[union-attr]
    assert [event.seq for event in store.changes("users").items] == [1, 2]


def test_a_matching_version_is_accepted(store: MemoryStore) -> None:
    store.put("users", "alice", 1)

    assert store.put("users", "alice", 2, expect_version=1).version == 2


def test_expect_version_zero_means_the_record_must_not_exist(
    store: MemoryStore,
) -> None:
    assert store.put("users", "alice", 1, expect_version=0).version == 1

    with pytest.raises(VersionConflict):
        store.put("users", "alice", 2, expect_version=0)


def test_delete_removes_the_record_and_logs_a_tombstone(store: MemoryStore) -> None:
    store.put("users", "alice", 1)

    assert store.delete("users", "alice") is True

    assert store.get("users", "alice") is None
    last = store.changes("users").items[-1]
    assert (last.op, last.key, last.version, last.value) == ("delete", "alice", 2, None)


def test_delete_of_a_missing_key_returns_false_and_logs_nothing(
    store: MemoryStore,
) -> None:
    store.put("users", "alice", 1)

    assert store.delete("users", "bob") is False

    assert len(store.changes("users").items) == 1


def test_delete_with_a_wrong_version_raises_and_keeps_the_record(
    store: MemoryStore,
) -> None:
    store.put("users", "alice", 1)

    with pytest.raises(VersionConflict):
        store.delete("users", "alice", expect_version=5)

    assert store.get("users", "alice") is not None


def test_recreating_a_deleted_key_starts_again_at_version_one(
    store: MemoryStore,
) -> None:
    store.put("users", "alice", 1)
    store.delete("users", "alice")

    record = store.put("users", "alice", 2)

    assert record.version == 1
    assert store.changes("users").items[-1].op == "create"


def test_every_write_logs_one_event_with_contiguous_seq(store: MemoryStore) -> None:
    store.create("notes", "a", "one")
    store.update("notes", "a", "two")
    store.put("notes", "b", "three")
    store.delete("notes", "a")

    events = store.changes("notes").items

    assert [(e.op, e.key, e.version, e.seq) for e in events] == [
        ("create", "a", 1, 1),
        ("update", "a", 2, 2),
        ("create", "b", 1, 3),
        ("delete", "a", 3, 4),
    ]
    assert len({event.epoch for event in events}) == 1
    assert all(e.ts > 0 for e in events)


def test_an_event_time_is_its_stream_id_and_only_an_update_carries_created(
    store: MemoryStore, client: Any
) -> None:
    created = store.create("notes", "a", "one")
    updated = store.update("notes", "a", "two")
    store.delete("notes", "a")

    entries = client.xrange(NamespaceKeys("notes").log)
    events = store.changes("notes").items

    assert [list(fields) for _, fields in entries] == [
        [b"key", b"op", b"version", b"seq", b"value"],
        [b"key", b"op", b"version", b"seq", b"created", b"value"],
        [b"key", b"op", b"version", b"seq"],
    ]
    assert entries[1][1][b"created"] == str(created.created).encode()
    assert [e.ts for e in events] == [int(e.id.split("-")[0]) for e in events]
    assert (events[0].ts, events[1].ts) == (created.updated, updated.updated)
    assert updated.created == created.created <= updated.updated <= events[2].ts


def test_changes_pages_through_the_log_with_tokens(store: MemoryStore) -> None:
    for i in range(7):
        store.put("paged", f"k{i}", i)

    seen, token, pages = [], None, 0
    while True:
        page = store.changes("paged", after=token, limit=3)
        seen += [event.seq for event in page.items]
        pages += 1
        if page.next is None:
            break
        token = page.next

    assert seen == list(range(1, 8))
    assert pages == 3


def test_an_event_token_resumes_just_after_that_event(store: MemoryStore) -> None:
    for i in range(4):
        store.put("resume", "k", i)
    second = store.changes("resume").items[1]

    rest = store.changes("resume", after=second.token)

    assert [event.seq for event in rest.items] == [3, 4]
    assert rest.next is None


def test_list_pages_through_records_in_key_order(store: MemoryStore) -> None:
    keys = [f"key{i:02d}" for i in range(25)]
    store.put_many([("listed", key, i) for i, key in enumerate(reversed(keys))])

    seen, after = [], None
    while True:
        page = store.list("listed", after=after, limit=10)
        seen += [record.key for record in page.items]
        if page.next is None:
            break
        after = page.next

    assert seen == keys


def test_list_leaves_out_deleted_records(store: MemoryStore) -> None:
    store.put("listed", "a", 1)
    store.put("listed", "b", 2)
    store.delete("listed", "a")

    assert [record.key for record in store.list("listed").items] == ["b"]


def test_namespaces_lists_namespaces_matching_a_pattern(store: MemoryStore) -> None:
    for namespace in ["users:1", "users:2", "tenant-a/notes"]:
        store.put(namespace, "k", 1)

    assert store.namespaces() == ["tenant-a/notes", "users:1", "users:2"]
    assert store.namespaces("users:*") == ["users:1", "users:2"]


def test_put_many_writes_each_record_and_reports_refusals_in_place(
    store: MemoryStore,
) -> None:
    store.put("batch", "taken", 0)

    results = store.put_many(
        [("batch", "a", 1), ("batch", "taken", 2, 5), ("batch", "b", 3)]
    )

    assert [getattr(r, "version", None) for r in results] == [1, None, 1]
    assert isinstance(results[1], VersionConflict)
    assert store.get("batch", "taken").value == 0  # type: ignore[union-attr]
    assert [event.key for event in store.changes("batch").items] == ["taken", "a", "b"]


def test_put_many_is_one_round_trip(store: MemoryStore, client: Any) -> None:
    store.put("batch", "warm", 0)  # loads the script
    pipelines = []
    original = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        pipelines.append(pipe)
        return pipe

    client.pipeline = counting_pipeline
    on_cluster = isinstance(client, RedisCluster)
    reads = 0 if on_cluster else int(client.info("stats")["total_reads_processed"])

    store.put_many([("batch", f"k{i}", i) for i in range(50)])

    if on_cluster:
        # Through redis-py's cluster pipeline.
        assert len(pipelines) == 1
    else:
        # On the store's own connection, the 50 calls (about 16 KB) leave in
        # one write, which Redis takes in a read or two (and one for INFO);
        # 50 round trips would take 50.
        after = int(client.info("stats")["total_reads_processed"])
        assert after - reads <= 4
    assert len(store.list("batch").items) == 51


def test_every_key_of_a_namespace_shares_one_cluster_slot() -> None:
    from redis.crc import key_slot

    names = NamespaceKeys("tenant-a/notes")
    keys = [names.records, names.index, names.meta, names.log]

    assert len({key_slot(key.encode()) for key in keys}) == 1


def test_losing_the_log_metadata_starts_a_new_epoch_and_stales_old_tokens(
    store: MemoryStore, client: Any
) -> None:
    store.put("users", "alice", 1)
    old = store.changes("users").items[0]

    client.delete(NamespaceKeys("users").meta)  # as a flush or eviction would
    store.put("users", "alice", 2)

    fresh = store.changes("users").items
    assert [(e.seq, e.version) for e in fresh] == [(1, 2)]
    assert fresh[0].epoch != old.epoch
    with pytest.raises(StaleToken) as stale:
        store.changes("users", after=old.token)
    assert stale.value.epoch == fresh[0].epoch
