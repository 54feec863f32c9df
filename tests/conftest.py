"""Fixtures that start real redis-server processes: standalone and cluster.

``redis_url`` is parametrised over both deployments, so every test that uses
it (or ``client``/``store``, built on it) runs on each; the servers start
once per session and are flushed before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from redismem import MemoryStore
from redismem import aio as redismem_aio
from redismem.connection import connect, connect_async
from tests.servers import RedisClusterServers, RedisServer

# Property tests assert behaviour, not speed: a per-example deadline only
# turns a busy 2-core CI machine into failures.
settings.register_profile("redismem", deadline=None)
settings.load_profile("redismem")

DEPLOYMENTS = ["standalone", "cluster"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One standalone redis-server for the session."""
    server = RedisServer(tmp_path_factory.mktemp("standalone"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServers]:
    """A 3-master Redis Cluster for the session."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start private redis-servers (for restarts, AOF, kills); all stopped after."""
    started: list[RedisServer] = []

    def start(*extra: str) -> RedisServer:
        server = RedisServer(tmp_path / f"server{len(started)}", *extra)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(params=DEPLOYMENTS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty Redis: standalone, then a 3-master cluster."""
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushall()
    return server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A synchronous redis-py client for ``redis_url``."""
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(client: Any) -> MemoryStore:
    """A MemoryStore on ``client``."""
    return MemoryStore(client)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[Any]:
    """An asyncio redis-py client for ``redis_url``."""
    client = connect_async(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def astore(aclient: Any) -> redismem_aio.MemoryStore:
    """An asyncio MemoryStore on ``aclient``."""
    return redismem_aio.MemoryStore(aclient)


@pytest.fixture
def limiter(client: Any) -> Any:
    """A RateLimiter on ``client`` (standalone, then cluster)."""
    from redismem.limiter import RateLimiter

    return RateLimiter(client)


@pytest.fixture
def alimiter(aclient: Any) -> Any:
    """An asyncio RateLimiter on ``aclient``."""
    return redismem_aio.RateLimiter(aclient)


# Realtime server -------------------------------------------------------------


@pytest.fixture(scope="module")
def realtime_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A standalone redis-server of its own for one module's realtime servers."""
    server = RedisServer(tmp_path_factory.mktemp("realtime-redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def realtime(
    realtime_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``redismem serve`` in a subprocess, with small limits, for one module."""
    from tests.realtime import ServerProcess

    server = ServerProcess(
        realtime_redis.url,
        tmp_path_factory.mktemp("realtime"),
        "--max-connections-per-subject", "4",
        "--max-subscriptions", "3",
        "--max-message-bytes", "2048",
        "--heartbeat", "0.5",
        "--heartbeat-timeout", "0.5",
        "--max-send-buffer", "65536",
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def patient_realtime(
    realtime_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``redismem serve`` with a small send buffer and slow heartbeats: a
    client that stops reading must not be closed as a dead peer (1011)
    before it has fallen behind."""
    from tests.realtime import ServerProcess

    server = ServerProcess(
        realtime_redis.url,
        tmp_path_factory.mktemp("patient"),
        "--max-send-buffer", "65536",
        "--heartbeat", "30",
        "--heartbeat-timeout", "30",
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


@pytest.fixture
def realtime_store(realtime_redis: RedisServer) -> Iterator[MemoryStore]:
    """A MemoryStore on the realtime server's Redis, flushed first."""
    client = realtime_redis.client()
    client.flushall()
    yield MemoryStore(client)
    client.close()
