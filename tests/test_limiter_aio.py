"""The asyncio RateLimiter, RateLimitedStore, HTTP headers and ASGI middleware."""

from __future__ import annotations

from typing import Any

import pytest

from redismem import RateLimitExceeded
from redismem import aio as redismem_aio
from redismem.limiter import Decision, Limit, Policy, RateLimiter
from redismem.limiter.http import RateLimitMiddleware, rate_limit_headers
from redismem.limiter.store import RateLimitedStore
from redismem.store import MemoryStore


@pytest.mark.anyio
async def test_async_hit_peek_refund_match_the_sync_semantics(alimiter: Any) -> None:
    limit = "fixed_window:2/h"

    hits = [await alimiter.hit("al", limit) for _ in range(3)]
    peeked = await alimiter.peek("al", limit)
    refunded = await alimiter.refund("al", limit)

    assert [d.allowed for d in hits] == [True, True, False]
    assert not peeked.allowed
    assert refunded.allowed and refunded.remaining == 1


@pytest.mark.anyio
async def test_async_lists_usage_and_policies(alimiter: Any) -> None:
    await alimiter.deny("bea")
    await alimiter.save_policy(Policy.build("api", {}, default="token_bucket:1/h"))

    denied = await alimiter.hit_policy("bea", "api", "read")
    first = await alimiter.hit_policy("cid", "api", "read")
    second = await alimiter.hit_policy("cid", "api", "read")
    usage = await alimiter.usage("cid", minutes=1, days=1)

    assert denied.reason == "denied"
    assert (first.allowed, second.allowed) == (True, False)
    assert usage["days"][0]["operations"]["read"]["refused"] == 1
    assert await alimiter.top_refused() in (
        [("bea", 1), ("cid", 1)],
        [("cid", 1), ("bea", 1)],
    )
    pipelined = await alimiter.hit_many([("dan", "token_bucket:1/h")] * 2)
    assert [d.allowed for d in pipelined] == [True, False]


@pytest.mark.anyio
async def test_async_limiter_fails_within_its_timeout(server_factory: Any) -> None:
    server = server_factory()
    limiter = redismem_aio.RateLimiter.from_url(
        server.url, timeout=0.2, fail_open=False
    )
    assert (await limiter.hit("ed", "fixed_window:1/s")).allowed
    server.client().execute_command("CLIENT", "PAUSE", 3000, "ALL")

    decision = await limiter.hit("ed", "fixed_window:1/s")

    assert (decision.allowed, decision.reason) == (False, "unavailable")


def test_rate_limited_store_raises_with_the_decision_and_leaves_the_store_alone(
    client: Any, store: MemoryStore
) -> None:
    limiter = RateLimiter(client)
    limiter.save_policy(
        Policy.build("store", {"write": "token_bucket:1/h", "read": "token_bucket:5/h"})
    )
    limited = RateLimitedStore(store, limiter, policy="store", subject="tenant-a")

    limited.put("notes", "a", 1)
    with pytest.raises(RateLimitExceeded) as refused:
        limited.put("notes", "b", 2)

    assert refused.value.decision.limit == Limit.parse("token_bucket:1/h")
    assert refused.value.operation == "write"
    assert store.get("notes", "b") is None
    assert limited.get("notes", "a").value == 1  # type: ignore[union-attr]
    assert limited.for_subject("tenant-b").put("notes", "c", 3).version == 1
    with pytest.raises(RateLimitExceeded):
        limited.for_subject("tenant-c").put_many([("n", "k", i) for i in range(2)])


@pytest.mark.anyio
async def test_async_rate_limited_store_counts_put_many_by_writes(
    alimiter: Any, astore: Any
) -> None:
    await alimiter.save_policy(Policy.build("store", {"write": "token_bucket:3/h"}))
    limited = redismem_aio.RateLimitedStore(
        astore, alimiter, policy="store", subject="t"
    )

    await limited.put_many([("n", f"k{i}", i) for i in range(3)])

    with pytest.raises(RateLimitExceeded):
        await limited.create("n", "x", 1)
    assert (await limited.list("n")).items[0].key == "k0"


def test_headers_follow_the_ietf_draft() -> None:
    limit = Limit.parse("sliding_window:100/min")
    allowed = Decision(True, 41, 0.0, 59.2, limit, "ok")
    refused = Decision(False, 0, 12.3, 60.0, limit, "limited")
    denied = Decision(False, 0, None, 0.0, None, "denied")

    assert rate_limit_headers(allowed, name="api") == {
        "RateLimit-Policy": '"api";q=100;w=60',
        "RateLimit": '"api";r=41;t=60',
    }
    assert rate_limit_headers(refused)["Retry-After"] == "13"
    assert rate_limit_headers(denied) == {}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _request(app: Any, path: str, method: str = "GET") -> tuple[int, dict]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.anyio
async def test_middleware_answers_429_with_headers_once_the_subject_is_limited(
    alimiter: Any,
) -> None:
    app = RateLimitMiddleware(
        _app,
        alimiter,
        subject=lambda scope: scope["path"].strip("/") or None,
        limits="fixed_window:2/h",
    )

    statuses = [(await _request(app, "/key-1"))[0] for _ in range(3)]
    status, headers = await _request(app, "/key-1")
    other, _ = await _request(app, "/key-2")
    anonymous, bare = await _request(app, "/")

    assert statuses == [200, 200, 429]
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert headers["ratelimit"].startswith('"default";r=0;')
    assert other == 200
    assert anonymous == 200 and "ratelimit" not in bare


@pytest.mark.anyio
async def test_middleware_uses_the_policy_operation_of_the_http_method(
    alimiter: Any,
) -> None:
    await alimiter.save_policy(
        Policy.build("web", {"read": "token_bucket:5/h", "write": "token_bucket:1/h"})
    )
    app = RateLimitMiddleware(
        _app, alimiter, subject=lambda scope: "visitor", policy="web"
    )

    posts = [(await _request(app, "/", "POST"))[0] for _ in range(2)]
    get_status, get_headers = await _request(app, "/", "GET")

    assert posts == [200, 429]
    assert get_status == 200
    assert get_headers["ratelimit-policy"] == '"web";q=5;w=3600'


@pytest.mark.anyio
async def test_async_reset_and_set_limits(alimiter: Any) -> None:
    await alimiter.hit("fay", "token_bucket:1/h")
    await alimiter.hit("fay", "sliding_window:1/h", operation="write")

    assert await alimiter.reset("fay", "token_bucket:1/h") == 1
    assert (await alimiter.hit("fay", "token_bucket:1/h")).allowed
    assert await alimiter.reset("fay") >= 3
    assert (await alimiter.hit("fay", "sliding_window:1/h", operation="write")).allowed

    updated = await alimiter.set_limits("svc", "read", "quota:3/day")
    assert updated.limits_for("read") == (Limit.parse("quota:3/day"),)
    assert [p.name for p in await alimiter.stored_policies()] == ["svc"]
    removed = await alimiter.set_limits("svc", "read", None)
    assert removed.operations == {}
    assert await alimiter.stored_policies() == []
