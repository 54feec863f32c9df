"""Subscriptions to change feeds over a synchronous redis-py client.

A ``Subscription`` listens on pub/sub, reads history from the logs when it
starts, reconnects or sees a gap, and hands out every event once and in
order per namespace, or a ``Reset`` when history is gone. The merging logic
is in ``redismem.merge``; this module only does the I/O.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import redis
from redis.cluster import RedisCluster

from redismem import feed
from redismem.execution import run, run_pipelined
from redismem.keys import NAMESPACE_DIRECTORY, NamespaceKeys, channel_pattern
from redismem.merge import (
    FeedItem,
    FeedMerger,
    Need,
    check_subscription,
    resume_positions,
)
from redismem.replies import text
from redismem.tokens import LogPosition

logger = logging.getLogger(__name__)

#: Longest wait for the subscribe confirmations of one connect, in seconds.
CONNECT_TIMEOUT = 5.0
#: Longest single wait on the socket, so a closed subscription notices soon.
POLL_INTERVAL = 1.0
#: Reconnect backoff: first delay and ceiling, in seconds (with jitter).
BACKOFF_START, BACKOFF_MAX = 0.05, 2.0

#: What a lost or refused connection raises.
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def backoff_delay(failures: int) -> float:
    """Seconds to wait before reconnect attempt ``failures`` (from 1)."""
    delay = min(BACKOFF_MAX, BACKOFF_START * 2 ** max(failures - 1, 0))
    jitter = 0.5 + random.random() / 2
    return float(delay * jitter)


def pubsub_client(client: Any, attempt: int) -> tuple[Any, Any]:
    """A pub/sub object for ``client`` and the extra client to close with it.

    On a cluster, classic pub/sub reaches subscribers on every node, so the
    subscription talks to one node, another one on each reconnect attempt.
    """
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes()  # type: ignore[no-untyped-call]
        node = nodes[attempt % len(nodes)]
        if node.redis_connection is not None:
            # The node's own client: same credentials and TLS as the cluster.
            return node.redis_connection.pubsub(), None
        node_client = redis.Redis(host=node.host, port=node.port)
        return node_client.pubsub(), node_client  # type: ignore[no-untyped-call]
    return client.pubsub(), None


class Subscription:
    """An iterator over change events and resets; also a context manager.

    Made by ``MemoryStore.subscribe``. Iterating blocks until the next item;
    ``get(timeout)`` returns None when nothing came in time. ``resume_token``
    is the position just after the last item handed out.
    """

    def __init__(
        self,
        client: Any,
        patterns: Sequence[str],
        *,
        resume: str | None,
        start: str,
    ) -> None:
        checked = check_subscription(patterns, start)
        positions = None if resume is None else resume_positions(resume, checked)
        self.client = client
        self._merger = FeedMerger(checked, positions=positions, start=start)
        self._pubsub: Any = None
        self._node_client: Any = None
        self._failures = 0
        self._closed = False
        # Connect now, so that start="now" means the moment of subscribe().
        self._connect()

    @property
    def resume_token(self) -> str:
        """Opaque token: the position just after the last item handed out."""
        return self._merger.resume_token

    @property
    def namespaces(self) -> list[str]:
        """The namespaces the subscription follows so far."""
        return sorted(self._merger.feeds)

    def get(self, timeout: float | None = None) -> FeedItem | None:
        """The next event or reset; None if none came within ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = self._merger.pop()
            if item is not None:
                return item
            remaining = POLL_INTERVAL
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
            if self._closed or remaining <= 0:
                return None
            try:
                self._step(remaining)
            except CONNECTION_ERRORS as exc:
                self._lost(exc, deadline)

    def close(self) -> None:
        """Stop listening and release the connection."""
        self._closed = True
        self._disconnect()
        logger.info("subscription closed")

    def __iter__(self) -> Iterator[FeedItem]:
        return self

    def __next__(self) -> FeedItem:
        item = self.get()
        if item is None:
            raise StopIteration
        return item

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _step(self, wait: float) -> None:
        """Connect if needed, serve what namespaces need, read one message."""
        if self._pubsub is None:
            self._connect()
        self._serve()
        if self._merger.ready:
            return
        message = self._pubsub.get_message(timeout=wait)
        if message is not None:
            self._on_message(message)

    def _connect(self) -> None:
        pubsub, self._node_client = pubsub_client(self.client, self._failures)
        try:
            held = self._subscribe(pubsub)
        except BaseException:
            pubsub.close()
            self._disconnect()
            raise
        self._pubsub = pubsub

        reconnect = bool(self._merger.feeds)
        self._place_namespaces()
        if reconnect:
            self._merger.catch_up()
        self._merger.started()
        for message in held:
            self._on_message(message)
        self._failures = 0
        logger.info(
            "subscribed to %s (%d namespaces)",
            ", ".join(self._merger.patterns),
            len(self._merger.feeds),
        )

    def _subscribe(self, pubsub: Any) -> list[dict[str, Any]]:
        """Subscribe and wait for every confirmation; return messages held."""
        channels = [NamespaceKeys(ns).channel for ns in self._merger.exact_namespaces]
        globs = [channel_pattern(glob) for glob in self._merger.globs]
        if channels:
            pubsub.subscribe(*channels)
        if globs:
            pubsub.psubscribe(*globs)

        held, confirmed = [], 0
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while confirmed < len(channels) + len(globs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise redis.TimeoutError("no subscribe confirmation from Redis")
            message = pubsub.get_message(timeout=remaining)
            if message is None:
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
            elif message["type"] in ("message", "pmessage"):
                held.append(message)
        return held

    def _place_namespaces(self) -> None:
        """Find the namespaces the patterns match, with their heads."""
        merger = self._merger
        found = set(merger.exact_namespaces) | set(merger.resumed_namespaces)
        for glob in merger.globs:
            names = self.client.sscan_iter(NAMESPACE_DIRECTORY, match=glob)
            found.update(text(name) for name in names)
        new = sorted(found - set(merger.feeds))

        heads: list[LogPosition | None] = [None] * len(new)
        if new and merger.start == "now" and not merger.has_started:
            heads = run_pipelined(self.client, [feed.head(ns) for ns in new])
        for namespace, head in zip(new, heads, strict=True):
            merger.place(namespace, head)

    def _serve(self) -> None:
        """Read the history pages and snapshots that namespaces wait for."""
        while (need := self._merger.next_need()) is not None:
            namespace_feed, kind = need
            namespace = namespace_feed.namespace
            if kind is Need.HISTORY:
                page = run(
                    self.client, feed.history(namespace, namespace_feed.position)
                )
                self._merger.on_history(namespace, page)
            else:
                snapshot = run(self.client, feed.snapshot(namespace))
                self._merger.on_snapshot(namespace, snapshot)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("message", "pmessage"):
            logger.debug("<- %s", text(message["channel"]))
            self._merger.on_message(text(message["channel"]), message["data"])
        elif kind in ("subscribe", "psubscribe"):
            # redis-py reconnected and subscribed again on its own: messages
            # may have been lost meanwhile, so read history from each position.
            logger.info("pub/sub connection re-established; catching up")
            self._merger.catch_up()

    def _lost(self, exc: BaseException, deadline: float | None) -> None:
        self._failures += 1
        delay = backoff_delay(self._failures)
        logger.info(
            "subscription connection lost (%s); retry %d in %.2fs",
            exc,
            self._failures,
            delay,
        )
        self._disconnect()
        if deadline is not None:
            delay = min(delay, max(deadline - time.monotonic(), 0))
        time.sleep(delay)

    def _disconnect(self) -> None:
        for closeable in (self._pubsub, self._node_client):
            if closeable is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    closeable.close()
        self._pubsub = self._node_client = None
