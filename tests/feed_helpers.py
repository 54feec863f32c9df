"""Helpers shared by the change-feed tests: writer processes and waiting."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from redismem import MemoryStore
from redismem.connection import connect

#: Longest a test waits for a condition, in seconds.
DEADLINE = 20.0


def write_updates(url: str, namespace: str, count: int, keys: int) -> None:
    """Process target: ``count`` puts spread over ``keys`` keys, in order."""
    client = connect(url)
    store = MemoryStore(client)
    for i in range(count):
        store.put(namespace, f"k{i % keys}", i)
    client.close()


def start_writer(url: str, namespace: str, count: int, keys: int = 10) -> Any:
    """Start ``write_updates`` in its own process; the caller joins it."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=write_updates, args=(url, namespace, count, keys), daemon=True
    )
    process.start()
    return process


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until true, failing after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
