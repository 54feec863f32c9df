"""Subscriptions: live events merged with history, gap-free (items 2 and 3)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from redismem import (
    ChangeEvent,
    InvalidNamespace,
    InvalidToken,
    MemoryStore,
    Reset,
    Subscription,
)
from redismem.compaction import MANUAL_ONLY
from redismem.execution import run
from redismem.keys import NamespaceKeys
from redismem.merge import FeedItem
from redismem.operations import write
from redismem.tokens import decode_feed_token, encode_feed_token

WAIT = 5.0


def take(subscription: Subscription, count: int) -> list[FeedItem]:
    """The next ``count`` items, failing if one does not come within WAIT s."""
    items = []
    for _ in range(count):
        item = subscription.get(timeout=WAIT)
        assert item is not None, f"only {len(items)} of {count} items came"
        items.append(item)
    return items


def assert_quiet(subscription: Subscription) -> None:
    """Nothing more is handed out."""
    assert subscription.get(timeout=0.3) is None


def summary(items: list[FeedItem]) -> list[tuple[str, str, Any]]:
    """(namespace, key, value) of events; ("reset", namespace, keys) of resets."""
    return [
        (item.namespace, item.key, item.value)
        if isinstance(item, ChangeEvent)
        else ("reset", item.namespace, [r.key for r in item.records])
        for item in items
    ]


def put_unpublished(client: Any, namespace: str, key: str, value: Any) -> None:
    """Log a write whose pub/sub message nobody receives (a lost message)."""
    call = write(
        namespace, key, value, mode="put", expect_version=None, max_value_bytes=1000
    )
    args = list(call.args)
    args[5] = "rm:ch:nobody-listens"
    run(client, dataclasses.replace(call, args=tuple(args)))


def test_start_now_yields_only_events_written_after_subscribing(
    store: MemoryStore,
) -> None:
    store.put("now", "old", 1)

    with store.subscribe("now") as subscription:
        store.put("now", "new", 2)
        items = take(subscription, 1)
        assert_quiet(subscription)

    assert summary(items) == [("now", "new", 2)]


def test_start_earliest_yields_history_then_live_events_in_order(
    store: MemoryStore,
) -> None:
    for i in range(3):
        store.put("early", f"k{i}", i)

    with store.subscribe("early", start="earliest") as subscription:
        store.put("early", "k3", 3)
        items = take(subscription, 4)
        assert_quiet(subscription)

    assert [item.seq for item in items if isinstance(item, ChangeEvent)] == [1, 2, 3, 4]


def test_a_glob_follows_matching_namespaces_including_ones_created_later(
    store: MemoryStore,
) -> None:
    store.put("users:1", "a", 1)
    store.put("teams:1", "a", 1)

    with store.subscribe("users:*") as subscription:
        store.put("users:1", "a", 2)
        store.put("teams:1", "a", 2)
        store.put("users:2", "b", 1)
        store.put("users:2", "b", 2)
        items = take(subscription, 3)
        assert_quiet(subscription)

    assert sorted(summary(items)) == [
        ("users:1", "a", 2),
        ("users:2", "b", 1),
        ("users:2", "b", 2),
    ]
    assert subscription.namespaces == ["users:1", "users:2"]


def test_resuming_continues_just_after_the_last_item_handed_out(
    store: MemoryStore,
) -> None:
    store.put("res:a", "k", 0)
    with store.subscribe("res:*") as subscription:
        for i in range(1, 4):
            store.put("res:a", "k", i)
        take(subscription, 2)
        token = subscription.resume_token
    store.put("res:a", "k", 4)
    store.put("res:b", "k", 0)  # a namespace newer than the token

    with store.subscribe("res:*", resume=token) as resumed:
        items = take(resumed, 3)
        assert_quiet(resumed)

    assert sorted(summary(items)) == [
        ("res:a", "k", 3),
        ("res:a", "k", 4),
        ("res:b", "k", 0),
    ]


def test_a_resume_token_round_trips_exactly(store: MemoryStore) -> None:
    store.put("trip:a", "k", 1)
    store.put("trip:b", "k", 1)

    with store.subscribe("trip:*") as subscription:
        token = subscription.resume_token

    positions = decode_feed_token(token)
    assert positions.keys() == {"trip:a", "trip:b"}
    assert encode_feed_token(positions) == token


def test_an_event_token_resumes_a_single_namespace(store: MemoryStore) -> None:
    store.put("single", "k", 1)
    first = store.changes("single").items[0]
    store.put("single", "k", 2)

    with store.subscribe("single", resume=first.token) as subscription:
        items = take(subscription, 1)

    assert summary(items) == [("single", "k", 2)]


def test_a_lost_live_message_is_filled_from_the_log(
    store: MemoryStore, client: Any
) -> None:
    store.put("lossy", "k", 0)
    with store.subscribe("lossy") as subscription:
        put_unpublished(client, "lossy", "k", 1)
        store.put("lossy", "k", 2)
        items = take(subscription, 2)
        assert_quiet(subscription)

    assert summary(items) == [("lossy", "k", 1), ("lossy", "k", 2)]


def test_resuming_behind_compacted_history_yields_a_reset_then_live_events(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    store.put("packed", "a", 0)
    with store.subscribe("packed") as subscription:
        token = subscription.resume_token
    store.put("packed", "a", 1)
    store.put("packed", "a", 2)
    store.put("packed", "b", 0)
    store.compact("packed")

    with store.subscribe("packed", resume=token) as resumed:
        (reset,) = take(resumed, 1)
        store.put("packed", "b", 1)
        (event,) = take(resumed, 1)
        assert_quiet(resumed)

    assert isinstance(reset, Reset) and "compacted" in reset.reason
    assert {r.key: r.value for r in reset.records} == {"a": 2, "b": 0}
    assert reset.seq == 4
    assert summary([event]) == [("packed", "b", 1)]
    assert decode_feed_token(resumed.resume_token)["packed"].seq == 5


def test_a_new_epoch_yields_a_reset_with_the_current_records(
    store: MemoryStore, client: Any
) -> None:
    store.put("lifetimes", "a", 1)
    with store.subscribe("lifetimes") as subscription:
        client.delete(NamespaceKeys("lifetimes").meta)  # the log's metadata is lost
        store.put("lifetimes", "b", 1)
        store.put("lifetimes", "b", 2)
        items = take(subscription, 1)
        assert_quiet(subscription)

    (reset,) = items
    assert isinstance(reset, Reset) and "epoch" in reset.reason
    assert {r.key: r.value for r in reset.records} == {"a": 1, "b": 2}
    assert reset.seq == 2


def test_resuming_with_a_token_of_an_old_epoch_yields_a_reset(
    store: MemoryStore, client: Any
) -> None:
    store.put("gone", "a", 1)
    with store.subscribe("gone") as subscription:
        token = subscription.resume_token
    client.delete(NamespaceKeys("gone").meta)
    store.put("gone", "a", 2)

    with store.subscribe("gone", resume=token) as resumed:
        (reset,) = take(resumed, 1)
        assert_quiet(resumed)

    assert isinstance(reset, Reset)
    assert [(r.key, r.value) for r in reset.records] == [("a", 2)]


@pytest.mark.parametrize(
    ("patterns", "options", "error"),
    [
        ((), {}, ValueError),
        (("",), {}, InvalidNamespace),
        (("bad name",), {}, InvalidNamespace),
        (("{tag}*",), {}, InvalidNamespace),
        (("ok",), {"start": "latest"}, ValueError),
        (("ok",), {"resume": "garbage"}, InvalidToken),
        (("a:*",), {"resume": "1.2.3-4"}, InvalidToken),
    ],
)
def test_a_bad_subscription_is_refused(
    store: MemoryStore,
    patterns: tuple[str, ...],
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        store.subscribe(*patterns, **options)


def test_closing_a_subscription_ends_its_iteration(store: MemoryStore) -> None:
    subscription = store.subscribe("closing")
    subscription.close()

    assert list(subscription) == []


def test_a_namespace_subscribed_before_it_exists_streams_from_its_first_event(
    store: MemoryStore,
) -> None:
    with store.subscribe("unborn") as subscription:
        for i in range(3):
            store.put("unborn", "k", i)
        items = take(subscription, 3)
        assert_quiet(subscription)

    assert [item.seq for item in items if isinstance(item, ChangeEvent)] == [1, 2, 3]


def test_start_earliest_on_a_compacted_log_begins_with_a_reset(client: Any) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for i in range(3):
        store.put("squashed", "k", i)
    store.compact("squashed")

    with store.subscribe("squashed", start="earliest") as subscription:
        (reset,) = take(subscription, 1)
        store.put("squashed", "k", 3)
        (event,) = take(subscription, 1)

    assert isinstance(reset, Reset) and reset.seq == 3
    assert [(r.key, r.value) for r in reset.records] == [("k", 2)]
    assert summary([event]) == [("squashed", "k", 3)]


def test_start_earliest_on_a_log_compacted_without_removals_replays_it_all(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for key in ("a", "b", "c"):
        store.put("distinct", key, 0)  # one event per key: nothing to remove
    store.compact("distinct")

    with store.subscribe("distinct", start="earliest") as subscription:
        items = take(subscription, 3)

    assert summary(items) == [("distinct", k, 0) for k in ("a", "b", "c")]
