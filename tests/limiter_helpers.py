"""Helpers shared by the limiter tests: Redis time and waiting on conditions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def redis_ms(client: Any) -> int:
    """Redis time in ms (any node of a cluster: they share the host clock)."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def wait_for(
    condition: Callable[[], T | None], *, timeout: float = 5.0, every: float = 0.01
) -> T:
    """Poll ``condition`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def all_keys(client: Any) -> list[str]:
    """Every key on the server or cluster, as text."""
    return sorted(
        key.decode() if isinstance(key, bytes) else key for key in client.scan_iter()
    )
