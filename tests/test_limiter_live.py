"""Limits across processes and Redis restarts: live policy changes reach two
running processes within 1 s; usage and state survive an AOF restart; an
unreachable Redis fails open or closed within the timeout."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from redismem.connection import connect
from redismem.limiter import Limit, Policy, RateLimiter

OLD, NEW = "token_bucket:1000/s", "sliding_window:1000/min"


def _follow_policy(url: str, name: str, reports: Any) -> None:
    """An app instance: hit the policy until its limit turns into NEW."""
    limiter = RateLimiter(connect(url))  # default refresh_interval
    reports.put(("ready", limiter.hit_policy(name, "api", "read").limit is not None))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        decision = limiter.hit_policy(name, "api", "read")
        if decision.limit == Limit.parse(NEW):
            reports.put(("changed", time.monotonic()))
            return
        time.sleep(0.01)
    reports.put(("timeout", time.monotonic()))


@pytest.mark.timeout(60)
def test_a_policy_change_reaches_two_running_processes_within_one_second(
    redis_url: str, client: Any
) -> None:
    admin = RateLimiter(client)
    admin.save_policy(Policy.build("api", {"read": OLD}))
    context = multiprocessing.get_context("fork")
    reports = context.Queue()
    workers = [
        context.Process(target=_follow_policy, args=(redis_url, f"app{i}", reports))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        assert [reports.get(timeout=10) for _ in workers] == [("ready", True)] * 2

        admin.set_limits("api", "read", NEW)
        changed = time.monotonic()
        seen = [reports.get(timeout=10) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)

    assert [kind for kind, _ in seen] == ["changed", "changed"]
    assert all(at - changed < 1.0 for _, at in seen)


def test_usage_and_limit_state_survive_a_redis_restart_with_aof(
    server_factory: Any,
) -> None:
    server = server_factory("--appendonly", "yes", "--appendfsync", "always")
    limiter = RateLimiter(server.client())
    for _ in range(3):
        limiter.hit("ada", "token_bucket:1/h,burst=2", operation="write")
    before = limiter.usage("ada", minutes=1, days=1)
    top_before = limiter.top_refused()

    server.restart()
    limiter = RateLimiter(server.client())

    assert limiter.usage("ada", minutes=1, days=1) == before
    assert before["days"][0]["operations"]["write"]["refused"] == 1
    assert limiter.top_refused() == top_before == [("ada", 1)]
    refused = limiter.hit("ada", "token_bucket:1/h,burst=2", operation="write")
    assert not refused.allowed  # the bucket is still empty after the restart


def test_an_unreachable_redis_fails_open_by_default_and_closed_when_asked(
    server_factory: Any,
) -> None:
    server = server_factory()
    url = server.url
    open_limiter = RateLimiter.from_url(url, timeout=0.2)
    closed_limiter = RateLimiter.from_url(url, timeout=0.2, fail_open=False)
    assert open_limiter.hit("bo", "fixed_window:1/s").reason == "ok"

    server.kill()

    failed_open = open_limiter.hit("bo", "fixed_window:1/s")
    failed_closed = closed_limiter.hit("bo", "fixed_window:1/s")
    assert (failed_open.allowed, failed_open.reason) == (True, "unavailable")
    assert (failed_closed.allowed, failed_closed.reason) == (False, "unavailable")


def test_one_limiter_carries_on_across_a_script_flush_and_a_redis_restart(
    server_factory: Any,
) -> None:
    server = server_factory("--appendonly", "yes", "--appendfsync", "always")
    limiter = RateLimiter(server.client())
    limit = "token_bucket:3/h"
    first = limiter.hit("kai", limit)

    server.client().script_flush()
    after_flush = limiter.hit("kai", limit)
    server.restart()
    after_restart = limiter.hit("kai", limit)

    assert [(d.reason, d.remaining) for d in (first, after_flush, after_restart)] == [
        ("ok", 2),
        ("ok", 1),
        ("ok", 0),
    ]


def test_a_redis_slower_than_the_timeout_fails_within_the_timeout(
    server_factory: Any,
) -> None:
    server = server_factory()
    limiter = RateLimiter.from_url(server.url, timeout=0.2, fail_open=False)
    assert limiter.hit("cy", "fixed_window:1/s").allowed
    server.client().execute_command("CLIENT", "PAUSE", 3000, "ALL")

    started = time.monotonic()
    decision = limiter.hit("cy", "fixed_window:1/s")
    took = time.monotonic() - started

    assert (decision.allowed, decision.reason) == (False, "unavailable")
    assert took < 1.0


def test_a_policy_hit_fails_open_when_redis_is_gone(server_factory: Any) -> None:
    server = server_factory()
    limiter = RateLimiter.from_url(server.url, timeout=0.2)
    limiter.save_policy(Policy.build("api", {"read": "token_bucket:1/h"}))

    server.kill()

    decision = limiter.hit_policy("gus", "api", "read")
    assert (decision.allowed, decision.reason) == (True, "unavailable")
