"""The connections a store keeps for its script calls (redismem.held_connections).

Each test runs on a private redis-server, so the server's count of connected
clients shows how many connections the store opened.
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
from typing import Any

import redis

from redismem import MemoryStore
from tests.servers import RedisServer

THREADS = 6
WRITES = 40


def connected_clients(server: RedisServer) -> int:
    """Clients connected to ``server``, not counting the probe that asks."""
    probe = server.client()
    try:
        return int(probe.info("clients")["connected_clients"]) - 1
    finally:
        probe.close()


def test_writes_in_sequence_keep_using_one_connection(server_factory: Any) -> None:
    server: RedisServer = server_factory()
    store = MemoryStore(server.client())
    store.put("users", "alice", 0)
    # The store's connection, and the pool's for SCRIPT LOAD and SADD.
    opened = connected_clients(server)

    for version in range(2, WRITES + 2):
        assert store.put("users", "alice", version).version == version

    assert opened <= 2
    assert connected_clients(server) == opened


def test_threads_writing_at_once_each_get_their_own_connection(
    server_factory: Any,
) -> None:
    server: RedisServer = server_factory()
    store = MemoryStore(server.client())
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def write_chain(thread: int) -> None:
        # A reply read by the wrong thread would break this version chain.
        try:
            start.wait()
            for version in range(WRITES):
                record = store.put(
                    "users", f"t{thread}", version, expect_version=version
                )
                assert (record.version, record.value) == (version + 1, version)
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=write_chain, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    # At most one kept per thread, and as many from the pool for SCRIPT LOAD
    # (each thread may meet NOSCRIPT first) and SADD.
    assert connected_clients(server) <= 2 * THREADS
    seqs = [event.seq for event in store.changes("users", limit=1000).items]
    assert seqs == list(range(1, THREADS * WRITES + 1))


def connections_accepted(server: RedisServer) -> int:
    """Connections ``server`` has accepted so far, the probe that asks included."""
    probe = server.client()
    try:
        return int(probe.info("stats")["total_connections_received"])
    finally:
        probe.close()


def _write_in_child(store: MemoryStore) -> None:
    for version in range(2, 5):
        store.put("users", "alice", version, expect_version=version - 1)


def test_a_forked_child_writes_on_its_own_connections(server_factory: Any) -> None:
    server: RedisServer = server_factory()
    store = MemoryStore(server.client())
    store.put("users", "alice", 1)
    accepted = connections_accepted(server)

    child = multiprocessing.get_context("fork").Process(
        target=_write_in_child, args=(store,)
    )
    child.start()
    child.join(timeout=30)

    assert child.exitcode == 0
    # The child connected anew (the next probe is one more connection).
    assert connections_accepted(server) - accepted - 1 >= 1
    # The parent's connection was neither used nor closed by the child.
    assert store.put("users", "alice", 5, expect_version=4).version == 5
    assert [e.seq for e in store.changes("users").items] == [1, 2, 3, 4, 5]


def test_a_closed_client_reconnects_on_the_next_write(server_factory: Any) -> None:
    server: RedisServer = server_factory()
    client = server.client()
    store = MemoryStore(client)
    store.put("users", "alice", 1)

    client.close()

    assert store.put("users", "alice", 2, expect_version=1).version == 2


def test_a_collected_store_gives_its_connection_back_to_the_pool(
    server_factory: Any,
) -> None:
    server: RedisServer = server_factory()
    client = server.client()
    first = MemoryStore(client)
    first.put("users", "alice", 1)
    opened = connected_clients(server)
    del first
    gc.collect()

    # Both connections are idle in the pool again: the second store borrows
    # one and PING gets the other, so no third is opened.
    second = MemoryStore(client)
    second.put("users", "alice", 2)
    client.ping()

    assert connected_clients(server) == opened == 2


def test_a_single_connection_client_keeps_its_one_connection(
    server_factory: Any,
) -> None:
    server: RedisServer = server_factory()
    client = redis.Redis(port=server.port, single_connection_client=True)
    store = MemoryStore(client)

    store.put("users", "alice", 1)
    assert client.hget("rm:{users}:records", "alice") is not None

    assert connected_clients(server) == 1
