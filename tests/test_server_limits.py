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

from redismem import Decision, Limit, MemoryStore, Policy
from redismem.server import ServerConfig, create_app, policy_limiter
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

    def __call__(self, subject: str, operation: str) -> Decision:
        self.calls[subject, operation] += 1
        used = self.calls[subject, operation]
        return Decision(
            allowed=used <= 2,
            remaining=max(0, 2 - used),
            retry_after=7.0 if used > 2 else 0.0,
            reset_after=7.0,
            limit=Limit.parse("fixed_window:2/min"),
            reason="ok" if used <= 2 else "limited",
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
    assert answers[0].headers["RateLimit-Policy"] == '"put";q=2;w=60'
    assert answers[0].headers["RateLimit"] == '"put";r=1;t=7'
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


@pytest.fixture(scope="module")
def policed(realtime_redis: RedisServer) -> Iterator[ThreadedServer]:
    """A server whose API calls go through the shared limiter's "api" policy."""
    from redismem.aio import RateLimiter as SharedLimiter
    from redismem.connection import connect_async

    limiter = SharedLimiter(connect_async(realtime_redis.url))
    config = ServerConfig(
        url=realtime_redis.url,
        auth=AuthConfig(jwt_secret=SECRET),
        rate_limiter=policy_limiter(limiter, "api"),
    )
    server = ThreadedServer(create_app(config)).start()
    yield server
    server.stop()


def test_a_live_policy_in_redis_limits_each_operation_of_the_http_api(
    policed: ThreadedServer, realtime_store: MemoryStore, realtime_redis: RedisServer
) -> None:
    from redismem import RateLimiter

    RateLimiter(realtime_redis.client()).save_policy(
        Policy.build("api", {"put": "fixed_window:2/min", "*": "fixed_window:100/min"})
    )
    credential = bearer(token(fresh_subject()))

    puts = [
        httpx.put(
            f"{policed.http}/v1/namespaces/pol/records/k{i}",
            json={"value": i},
            headers=credential,
        )
        for i in range(3)
    ]
    read = httpx.get(f"{policed.http}/v1/namespaces/pol/records/k0", headers=credential)

    assert [answer.status_code for answer in puts] == [201, 201, 429], puts[0].text
    assert puts[1].headers["RateLimit-Policy"] == '"put";q=2;w=60'
    assert puts[1].headers["RateLimit"].startswith('"put";r=0;')
    assert int(puts[2].headers["Retry-After"]) >= 1
    assert realtime_store.get("pol", "k2") is None
    assert read.status_code == 200
    assert read.headers["RateLimit-Policy"] == '"get";q=100;w=60'


def test_serve_rate_limit_policy_limits_the_api_of_a_served_process(
    realtime_redis: RedisServer, realtime_store: MemoryStore, tmp_path: Any
) -> None:
    from redismem import RateLimiter

    RateLimiter(realtime_redis.client()).save_policy(
        Policy.build("served", {"*": "fixed_window:1/min"})
    )
    server = ServerProcess(
        realtime_redis.url, tmp_path, "--rate-limit-policy", "served"
    ).start()
    try:
        credential = bearer(token(fresh_subject()))
        url = f"{server.http}/v1/namespaces/srv/records/k"
        answers = [httpx.get(url, headers=credential) for _ in range(2)]
    finally:
        server.stop()

    assert [answer.status_code for answer in answers] == [404, 429]
    assert answers[1].json()["error"]["code"] == "rate_limited"
