"""The guided tour behind ``redismem demo``: writes, and the events they cause.

It subscribes to the demo namespaces, then creates, updates and deletes a few
records; after each write it prints the change event that arrives on the
subscription, so the whole idea (one atomic write, one logged and published
event) is visible in one command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redismem.errors import RedisMemError
from redismem.keys import CHANNEL_PREFIX
from redismem.models import ChangeEvent
from redismem.replies import published_event
from redismem.store import MemoryStore

NAMESPACE_PATTERN = "demo:*"
EVENT_WAIT_SECONDS = 5.0


def run_demo(client: Any, say: Callable[[str], None]) -> list[ChangeEvent]:
    """Run the tour on ``client``, printing with ``say``; return the events seen."""
    store = MemoryStore(client)
    subscription = client.pubsub(ignore_subscribe_messages=True)
    subscription.psubscribe(CHANNEL_PREFIX + NAMESPACE_PATTERN)
    received: list[ChangeEvent] = []

    def show(action: str, write: Callable[[], object]) -> None:
        say(f"> {action}")
        write()
        event = _next_event(subscription)
        received.append(event)
        value = "" if event.op == "delete" else f" value={event.value!r}"
        say(
            f"  event seq={event.seq} {event.op} {event.namespace}/{event.key} "
            f"version={event.version}{value}"
        )

    try:
        show(
            "create demo:users/alice",
            lambda: store.create(
                "demo:users", "alice", {"name": "Alice", "plan": "free"}
            ),
        )
        show(
            "update demo:users/alice at version 1",
            lambda: store.update(
                "demo:users",
                "alice",
                {"name": "Alice", "plan": "pro"},
                expect_version=1,
            ),
        )
        show(
            "put demo:notes/today",
            lambda: store.put("demo:notes", "today", ["buy milk"]),
        )
        show("delete demo:users/alice", lambda: store.delete("demo:users", "alice"))
    finally:
        subscription.close()

    log = store.changes("demo:users").items
    say(
        f"> the change log of demo:users holds {len(log)} events, "
        f"resume token after the last: {log[-1].token}"
    )
    return received


def _next_event(subscription: Any) -> ChangeEvent:
    # get_message() also returns None when it consumed a subscribe
    # confirmation, so wait against a deadline rather than trusting one call.
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        message = subscription.get_message(timeout=left)
        if message is not None:
            return published_event(message["data"])
    raise RedisMemError("no change event arrived on the subscription")
