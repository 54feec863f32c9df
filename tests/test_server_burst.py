"""Many clients at once: a burst of subscribers is served, not refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.realtime import ServerProcess, bearer, recv_json, token
from tests.servers import RedisServer

pytestmark = pytest.mark.anyio

#: More subscribers at once than redis-py's default pool has connections (100).
BURST = 300


@pytest.fixture(scope="module")
def roomy_server(realtime_redis: RedisServer, tmp_path_factory: Any) -> Iterator[Any]:
    """A server whose connection limits let the whole burst in."""
    limit = str(BURST * 2)
    server = ServerProcess(
        realtime_redis.url,
        Path(tmp_path_factory.mktemp("burst")),
        "--max-connections", limit,
        "--max-connections-per-subject", limit,
        "--max-connections-per-address", limit,
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


async def test_a_burst_of_subscribers_is_acknowledged_every_one(
    roomy_server: ServerProcess,
) -> None:
    headers = bearer(token("crowd"))
    subscribe = json.dumps({"type": "subscribe", "pattern": "burst", "resume": None})
    clients = await asyncio.gather(
        *(
            websockets.connect(roomy_server.ws, additional_headers=headers)
            for _ in range(BURST)
        )
    )
    try:
        # Every subscription reads the log's head from Redis, all at once.
        await asyncio.gather(*(ws.send(subscribe) for ws in clients))
        answers = await asyncio.gather(*(recv_json(ws) for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))

    assert [answer["type"] for answer in answers] == ["subscribed"] * BURST


async def test_a_command_client_lets_a_burst_wait_for_connections(
    realtime_redis: RedisServer,
) -> None:
    from redismem.server.app import command_client

    # The API's rate-limit checks use such a client too: a check refused for
    # want of a connection would fail open and let the call through.
    client = command_client(realtime_redis.url, wait=10.0)
    try:
        answers = await asyncio.gather(*(client.ping() for _ in range(BURST)))
    finally:
        await client.aclose()

    assert answers == [True] * BURST
