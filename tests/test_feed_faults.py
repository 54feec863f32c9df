"""Faults: dropped connections and Redis restarts (issue 4, item 6)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from redismem import ChangeEvent, MemoryStore, Reset
from redismem import aio as redismem_aio
from redismem.compaction import MANUAL_ONLY
from redismem.connection import connect
from tests.feed_helpers import DEADLINE, start_writer
from tests.servers import RedisServer

WAIT = 10.0
PADDING = "x" * 2000


def nodes_of(client: Any) -> list[redis.Redis]:
    """A plain client per server: the cluster's nodes, or the one server."""
    if isinstance(client, RedisCluster):
        return [redis.Redis(host=n.host, port=n.port) for n in client.get_nodes()]
    return [client]


def kill_pubsub_connections(client: Any) -> int:
    """CLIENT KILL every pub/sub connection, on every node; how many died."""
    if isinstance(client, RedisCluster):
        killed = 0
        for node in client.get_nodes():
            with redis.Redis(host=node.host, port=node.port) as node_client:
                killed += node_client.client_kill_filter(_type="pubsub")
        return killed
    return int(client.client_kill_filter(_type="pubsub"))


def test_killing_the_subscriber_connection_under_load_loses_and_repeats_nothing(
    store: MemoryStore, client: Any, redis_url: str
) -> None:
    total = 1500
    subscription = store.subscribe("load")
    writer = start_writer(redis_url, "load", total)

    seqs: list[int] = []
    kills = kills_under_load = 0
    while len(seqs) < total:
        item = subscription.get(timeout=WAIT)
        assert isinstance(item, ChangeEvent), f"got {item!r} after {len(seqs)}"
        seqs.append(item.seq)
        if len(seqs) % 200 == 50:
            writing = writer.is_alive()
            killed = kill_pubsub_connections(client)
            kills += killed
            kills_under_load += killed if writing else 0
    writer.join(DEADLINE)
    late = subscription.get(timeout=0.3)
    subscription.close()

    assert writer.exitcode == 0
    assert kills >= 3  # the connection really was cut, again and again
    assert kills_under_load >= 1  # and at least once while events were written
    assert seqs == list(range(1, total + 1))
    assert late is None


def test_a_restart_with_aof_keeps_the_log_and_the_tokens_valid(
    server_factory: Any,
) -> None:
    server: RedisServer = server_factory("--appendonly", "yes")
    store = MemoryStore(connect(server.url))
    for i in range(10):
        store.put("durable", f"k{i % 3}", i)
    page = store.changes("durable", limit=4)
    with store.subscribe("durable") as subscription:
        feed_token = subscription.resume_token
    records = store.replay("durable")

    server.restart()
    store.put("durable", "k0", 10)

    rest = store.changes("durable", after=page.next)
    with store.subscribe("durable", resume=feed_token) as resumed:
        (event,) = [resumed.get(timeout=WAIT)]
    assert [e.seq for e in rest.items] == list(range(5, 12))
    assert isinstance(event, ChangeEvent) and (event.seq, event.value) == (11, 10)
    assert store.replay("durable", until=page.items[-1].ts) != {}
    assert store.replay("durable", until=rest.items[-2].token) == records


def test_a_live_subscriber_resumes_gap_free_across_a_redis_restart(
    server_factory: Any,
) -> None:
    server: RedisServer = server_factory("--appendonly", "yes")
    store = MemoryStore(connect(server.url))
    store.put("survivor", "k", 0)
    subscription = store.subscribe("survivor")
    store.put("survivor", "k", 1)
    before = subscription.get(timeout=WAIT)

    server.restart()
    store.put("survivor", "k", 2)
    store.put("survivor", "k", 3)
    after = [subscription.get(timeout=WAIT) for _ in range(2)]
    subscription.close()

    assert isinstance(before, ChangeEvent) and before.seq == 2
    assert [e.seq for e in after if isinstance(e, ChangeEvent)] == [3, 4]


def test_a_subscriber_beside_compaction_and_kills_sees_each_event_once_or_a_reset(
    client: Any, redis_url: str
) -> None:
    total = 1000
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    subscription = store.subscribe("churn")
    writer = start_writer(redis_url, "churn", total, keys=25)

    values: dict[str, Any] = {}
    expected, items, resets = 1, 0, 0
    while expected <= total:
        item = subscription.get(timeout=WAIT)
        assert item is not None, f"nothing after seq {expected - 1}"
        if isinstance(item, Reset):
            values = {record.key: record.value for record in item.records}
            expected, resets = item.seq + 1, resets + 1
        else:
            assert item.seq == expected  # in order, nothing skipped or repeated
            values[item.key] = item.value
            expected += 1
        items += 1
        if items % 150 == 0:
            # Compact to the head, then cut the connection: the catch-up read
            # meets compacted history and must say so with a reset.
            store.compact("churn")
            kill_pubsub_connections(client)
    writer.join(DEADLINE)
    subscription.close()

    assert writer.exitcode == 0
    assert values == {r.key: r.value for r in store.list("churn").items}


@pytest.mark.anyio
async def test_an_async_subscriber_reconnects_after_its_connection_is_killed(
    aclient: Any, client: Any, redis_url: str
) -> None:
    total = 400
    astore = redismem_aio.MemoryStore(aclient)
    subscription = await astore.subscribe("akilled")
    writer = start_writer(redis_url, "akilled", total)

    seqs: list[int] = []
    while len(seqs) < total:
        item = await subscription.get(timeout=WAIT)
        assert isinstance(item, ChangeEvent), f"got {item!r} after {len(seqs)}"
        seqs.append(item.seq)
        if len(seqs) in (100, 250):
            kill_pubsub_connections(client)
    writer.join(DEADLINE)
    await subscription.aclose()

    assert seqs == list(range(1, total + 1))


def test_a_subscriber_dropped_for_lagging_gets_a_reset_when_it_missed_compacted_events(
    client: Any,
) -> None:
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    store.put("slow", "k0", 0)
    subscription = store.subscribe("slow")
    store.put("slow", "k0", 1)
    assert subscription.get(timeout=WAIT) is not None

    nodes = nodes_of(client)
    limits = [node.config_get("client-output-buffer-limit") for node in nodes]
    try:
        # Redis drops a pub/sub client whose output buffer passes 1 kB: the
        # subscriber stops reading while 4 MB of events are written, more
        # than the socket buffers hold.
        for node in nodes:
            node.config_set("client-output-buffer-limit", "pubsub 1024 0 0")
        for start in range(0, 2000, 100):
            store.put_many(
                [("slow", f"k{i % 5}", [i, PADDING]) for i in range(start, start + 100)]
            )
    finally:
        for node, limit in zip(nodes, limits, strict=True):
            node.config_set(
                "client-output-buffer-limit", limit["client-output-buffer-limit"]
            )
    store.compact("slow")  # what it missed is compacted away

    items = []
    while not items or isinstance(items[-1], ChangeEvent):
        item = subscription.get(timeout=WAIT)
        assert item is not None
        items.append(item)
    store.put("slow", "k0", "after")
    last = subscription.get(timeout=WAIT)
    subscription.close()

    *delivered, reset = items
    assert [e.seq for e in delivered] == list(range(3, 3 + len(delivered)))
    assert len(delivered) < 2000  # the connection really was dropped
    assert isinstance(reset, Reset) and reset.seq == 2002
    assert {r.key: r.value[0] for r in reset.records} == {
        f"k{i}": 1995 + i for i in range(5)
    }
    assert isinstance(last, ChangeEvent) and (last.seq, last.value) == (2003, "after")
