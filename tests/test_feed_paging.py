"""Paging through the change log with filters (issue 4, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from redismem import InvalidKey, InvalidToken, MemoryStore, StaleToken, operations
from redismem.keys import NamespaceKeys
from redismem.models import ChangeEvent
from tests.feed_helpers import DEADLINE, start_writer


def all_events(store: MemoryStore, namespace: str, **filters: Any) -> list[ChangeEvent]:
    """Every page of a filtered read, concatenated."""
    events: list[ChangeEvent] = []
    token = None
    while True:
        page = store.changes(namespace, after=token, limit=3, **filters)
        events += page.items
        if page.next is None:
            return events
        token = page.next


def mixed_history(store: MemoryStore, namespace: str = "mix") -> list[ChangeEvent]:
    for i in range(6):
        store.put(namespace, f"user:{i % 3}", i)
        store.put(namespace, f"team:{i % 2}", i)
    store.delete(namespace, "user:1")
    store.delete(namespace, "team:0")
    return all_events(store, namespace)


def test_pages_filtered_by_operation_hold_exactly_those_operations(
    store: MemoryStore,
) -> None:
    history = mixed_history(store)

    deletes = all_events(store, "mix", ops=["delete"])
    creates_and_deletes = all_events(store, "mix", ops=("create", "delete"))

    assert deletes == [e for e in history if e.op == "delete"]
    assert creates_and_deletes == [e for e in history if e.op != "update"]


def test_pages_filtered_by_key_match_the_exact_key_or_a_prefix(
    store: MemoryStore,
) -> None:
    history = mixed_history(store)

    exact = all_events(store, "mix", key="user:1")
    prefix = all_events(store, "mix", key="team:*")

    assert exact == [e for e in history if e.key == "user:1"]
    assert prefix == [e for e in history if e.key.startswith("team:")]
    assert len(exact) == 3 and len(prefix) == 7


def test_pages_filtered_by_time_hold_the_events_of_that_range(
    store: MemoryStore,
) -> None:
    history = mixed_history(store)
    since, until = history[3].ts, history[9].ts

    window = all_events(store, "mix", since=since, until=until)

    assert window == [e for e in history if since <= e.ts <= until]
    assert window


def test_reverse_pages_run_newest_first_without_repeats(store: MemoryStore) -> None:
    history = mixed_history(store)

    newest_first = all_events(store, "mix", reverse=True)
    deletes = all_events(store, "mix", reverse=True, ops=["delete"])

    assert newest_first == history[::-1]
    assert deletes == [e for e in history[::-1] if e.op == "delete"]


def test_a_selective_filter_returns_short_pages_that_still_continue(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = mixed_history(store)
    monkeypatch.setattr(operations, "SCAN_BUDGET", 4)

    first = store.changes("mix", limit=3, ops=["delete"])
    everything = all_events(store, "mix", ops=["delete"])

    assert first.items == [] and first.next is not None
    assert everything == [e for e in history if e.op == "delete"]


def test_pages_read_under_concurrent_writes_neither_skip_nor_repeat(
    store: MemoryStore, redis_url: str
) -> None:
    total = 300
    writer = start_writer(redis_url, "busy", total)

    seqs: list[int] = []
    token = None
    while len(seqs) < total:
        page = store.changes("busy", after=token, limit=7)
        seqs += [event.seq for event in page.items]
        token = page.next or (page.items[-1].token if page.items else token)
    writer.join(DEADLINE)

    assert writer.exitcode == 0
    assert seqs == list(range(1, total + 1))


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"ops": ["insert"]}, ValueError),
        ({"ops": []}, ValueError),
        ({"key": "bad key"}, InvalidKey),
        ({"key": "{tag}*"}, InvalidKey),
        ({"since": -1}, ValueError),
        ({"since": "yesterday"}, ValueError),
        ({"since": 10, "until": 5}, ValueError),
        ({"limit": 0}, ValueError),
        ({"reverse": "yes"}, ValueError),
        ({"after": "not-a-token"}, InvalidToken),
    ],
)
def test_bad_filters_are_refused_before_reaching_redis(
    store: MemoryStore, client: Any, filters: dict[str, Any], error: type[Exception]
) -> None:
    store.put("mix", "a", 1)
    before = client.xlen(NamespaceKeys("mix").log)

    with pytest.raises(error):
        store.changes("mix", **filters)

    assert client.xlen(NamespaceKeys("mix").log) == before


def test_a_token_from_an_earlier_epoch_is_stale(
    store: MemoryStore, client: Any
) -> None:
    store.put("epochs", "a", 1)
    token = store.changes("epochs").items[0].token
    client.delete(NamespaceKeys("epochs").meta)  # the log's metadata is lost
    store.put("epochs", "a", 2)

    with pytest.raises(StaleToken) as raised:
        store.changes("epochs", after=token)

    assert raised.value.namespace == "epochs"
    assert raised.value.epoch != token.split(".")[0]
