"""Faults: dropped connections and Redis restarts (issue 4, item 6)."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from redismem import ChangeEvent, MemoryStore
from redismem.connection import connect
from tests.feed_helpers import DEADLINE, start_writer
from tests.servers import RedisServer

WAIT = 10.0


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
