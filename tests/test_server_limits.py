"""Connection, subscription, message-size and rate limits of the server."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from redismem import MemoryStore
from redismem.server import RateDecision, ServerConfig, create_app
from redismem.server.auth import AuthConfig
from redismem.server.limits import ConnectionLimits
from tests.realtime import (
    SECRET,
    ServerProcess,
    ThreadedServer,
    bearer,
    recv_json,
    token,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.anyio


def fresh_subject() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_connections_beyond_the_per_subject_limit_are_refused_with_a_code(
    realtime: ServerProcess,
) -> None:
    credential = bearer(token(fresh_subject()))
    other = bearer(token(fresh_subject()))
    opened = [
        await websockets.connect(realtime.ws, additional_headers=credential)
        for _ in range(4)
    ]
    try:
        for ws in opened:
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv_json(ws) == {"type": "pong"}

        async with websockets.connect(
            realtime.ws, additional_headers=credential
        ) as refused:
            frame = await recv_json(refused)
            with pytest.raises(ConnectionClosed) as closed:
                await refused.recv()
        async with websockets.connect(realtime.ws, additional_headers=other) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv_json(ws) == {"type": "pong"}
    finally:
        for ws in opened:
            await ws.close()

    assert frame["code"] == "too_many_connections"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429


async def test_subscriptions_beyond_the_per_connection_limit_are_refused(
    realtime: ServerProcess,
) -> None:
    async with websockets.connect(
        realtime.ws, additional_headers=bearer(token(fresh_subject()))
    ) as ws:
        acks = []
        for pattern in ("a", "b", "c", "d"):
            await ws.send(json.dumps({"type": "subscribe", "pattern": pattern}))
            acks.append(await recv_json(ws))
        await ws.send(json.dumps({"type": "subscribe", "pattern": "a"}))
        again = await recv_json(ws)

    assert [a["type"] for a in acks] == ["subscribed"] * 3 + ["error"]
    assert acks[3]["code"] == "too_many_subscriptions"
    assert again["code"] == "already_subscribed"


async def test_an_inbound_message_over_the_size_limit_closes_with_1009(
    realtime: ServerProcess,
) -> None:
    async with websockets.connect(
        realtime.ws, additional_headers=bearer(token(fresh_subject()))
    ) as ws:
        await ws.send(json.dumps({"type": "ping", "padding": "x" * 4096}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_an_http_body_over_the_size_limit_is_refused_and_writes_nothing(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    answer = httpx.put(
        f"{realtime.http}/v1/namespaces/big/records/k",
        json={"value": "x" * 4096},
        headers=bearer(token(fresh_subject())),
    )

    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "message_too_big"
    assert realtime_store.get("big", "k") is None


def test_connection_limits_count_per_process_subject_and_address() -> None:
    limits = ConnectionLimits(total=3, per_subject=2, per_address=2)

    assert limits.admit("s1", "10.0.0.1") is None
    assert limits.admit("s1", "10.0.0.2") is None
    assert limits.admit("s1", "10.0.0.3") == "subject"
    assert limits.admit("s2", "10.0.0.1") is None
    assert limits.admit("s3", "10.0.0.4") == "process"
    limits.release("s2", "10.0.0.1")
    assert limits.admit("s3", "10.0.0.1") is None
    assert limits.admit("s4", "10.0.0.1") == "process"
    limits.release("s1", "10.0.0.2")
    assert limits.admit("s4", "10.0.0.1") == "address"
    assert limits.admit("s4", "10.0.0.2") is None


class CountingLimiter:
    """Allows each (subject, operation) two calls, then refuses."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def __call__(self, subject: str, operation: str) -> RateDecision:
        self.calls[subject, operation] += 1
        used = self.calls[subject, operation]
        return RateDecision(
            allowed=used <= 2,
            limit=2,
            remaining=max(0, 2 - used),
            retry_after=7.0 if used > 2 else 0.0,
            reset_after=7.0,
        )


@pytest.fixture(scope="module")
def limited(
    realtime_redis: RedisServer,
) -> Iterator[tuple[ThreadedServer, CountingLimiter]]:
    limiter = CountingLimiter()
    config = ServerConfig(
        url=realtime_redis.url, auth=AuthConfig(jwt_secret=SECRET), rate_limiter=limiter
    )
    server = ThreadedServer(create_app(config)).start()
    yield server, limiter
    server.stop()


def test_http_calls_over_the_rate_limit_get_429_with_ratelimit_headers(
    limited: tuple[ThreadedServer, CountingLimiter], realtime_store: MemoryStore
) -> None:
    server, _ = limited
    credential = bearer(token(fresh_subject()))
    answers = [
        httpx.put(
            f"{server.http}/v1/namespaces/rl/records/k{i}",
            json={"value": i},
            headers=credential,
        )
        for i in range(3)
    ]

    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[0].headers["RateLimit-Limit"] == "2"
    assert answers[0].headers["RateLimit-Remaining"] == "1"
    assert answers[2].headers["Retry-After"] == "7"
    assert answers[2].json()["error"]["code"] == "rate_limited"
    assert realtime_store.get("rl", "k2") is None


async def test_websocket_subscribes_over_the_rate_limit_get_an_error_frame(
    limited: tuple[ThreadedServer, CountingLimiter],
) -> None:
    server, _ = limited
    async with websockets.connect(
        server.ws, additional_headers=bearer(token(fresh_subject()))
    ) as ws:
        frames: list[dict[str, Any]] = []
        for pattern in ("x", "y", "z"):
            await ws.send(json.dumps({"type": "subscribe", "pattern": pattern}))
            frames.append(await recv_json(ws))

    assert [f["type"] for f in frames] == ["subscribed", "subscribed", "error"]
    assert frames[2]["code"] == "rate_limited"
    assert frames[2]["retry_after"] == 7.0
