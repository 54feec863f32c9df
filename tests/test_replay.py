"""Replay: the records as of any point, from the log and its compacted prefix
(issue 4, item 4)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redismem import HistoryCompacted, InvalidToken, MemoryStore, StaleToken
from redismem.compaction import MANUAL_ONLY
from redismem.keys import NamespaceKeys
from redismem.models import Record

KEYS = ["a", "b", "c", "d"]
STEPS = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("compact")),
)
_namespaces = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEPS, min_size=1, max_size=30), data=st.data())
def test_replay_at_any_point_equals_the_records_at_that_point(
    client: Any, steps: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    namespace = f"replay{next(_namespaces)}"

    # After each write: its token, its time and the records it left.
    points: list[tuple[str, int, int, dict[str, Record]]] = []
    records: dict[str, Record] = {}
    compacted_seq = 0
    for step in steps:
        if step[0] == "put":
            record = store.put(namespace, step[1], step[2])
            records[record.key] = record
        elif step[0] == "delete" and store.delete(namespace, step[1]):
            del records[step[1]]
        elif step[0] == "compact" and points:
            compacted_seq = store.compact(namespace).compacted_seq
        else:
            continue
        if step[0] != "compact":
            event = store.changes(namespace, reverse=True, limit=1).items[0]
            points.append((event.token, event.seq, event.ts, dict(records)))

    assert store.replay(namespace) == dict(sorted(records.items()))
    if not points:
        return
    token, seq, ts, expected = data.draw(st.sampled_from(points))
    if seq < compacted_seq:
        with pytest.raises(HistoryCompacted):
            store.replay(namespace, until=token)
        return
    assert store.replay(namespace, until=token) == dict(sorted(expected.items()))
    # As of a time: the records after the last event at or before it.
    *_, (_, _, _, as_of_time) = [p for p in points if p[2] <= ts]
    assert store.replay(namespace, until=ts) == dict(sorted(as_of_time.items()))


def test_replay_before_the_compaction_point_raises_history_compacted(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    store.put("old", "k", 1)
    first = store.changes("old").items[0]
    store.put("old", "k", 2)
    store.compact("old")

    with pytest.raises(HistoryCompacted) as by_token:
        store.replay("old", until=first.token)
    with pytest.raises(HistoryCompacted):
        store.replay("old", until=first.ts - 1)

    assert by_token.value.compacted_seq == 2


def test_replay_with_a_token_of_another_epoch_is_stale(
    store: MemoryStore, client: Any
) -> None:
    store.put("reborn", "k", 1)
    token = store.changes("reborn").items[0].token
    client.delete(NamespaceKeys("reborn").meta)
    store.put("reborn", "k", 2)

    with pytest.raises(StaleToken, match="epoch"):
        store.replay("reborn", until=token)


@pytest.mark.parametrize(
    ("until", "error"),
    [(-5, ValueError), (1.5, ValueError), (True, ValueError), ("nope", InvalidToken)],
)
def test_a_bad_replay_point_is_refused(
    store: MemoryStore, until: Any, error: type[Exception]
) -> None:
    store.put("points", "k", 1)

    with pytest.raises(error):
        store.replay("points", until=until)


def test_replay_of_a_namespace_without_a_log_is_empty(store: MemoryStore) -> None:
    assert store.replay("nothing-here") == {}
