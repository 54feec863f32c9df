"""Subscriptions to change feeds over an asyncio redis-py client (the twin of
``redismem.subscription``; the merging logic is shared in ``redismem.merge``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from redismem import feed
from redismem.aio.execution import run, run_pipelined
from redismem.keys import NAMESPACE_DIRECTORY, NamespaceKeys, channel_pattern
from redismem.merge import (
    FeedItem,
    FeedMerger,
    Need,
    check_subscription,
    resume_positions,
)
from redismem.replies import text
from redismem.subscription import (
    CONNECT_TIMEOUT,
    CONNECTION_ERRORS,
    POLL_INTERVAL,
    backoff_delay,
)
from redismem.tokens import LogPosition

logger = logging.getLogger(__name__)


async def pubsub_client(client: Any, attempt: int) -> tuple[Any, Any]:
    """A pub/sub object for ``client`` and the extra client to close with it.

    On a cluster, classic pub/sub reaches subscribers on every node, so the
    subscription talks to one node, another one on each reconnect attempt.
    """
    if isinstance(client, RedisCluster):
        if not client.get_nodes():
            await client.initialize()  # a new cluster client knows no nodes yet
        nodes = client.get_nodes()
        node = nodes[attempt % len(nodes)]
        # A client with the node's own connection settings (credentials, TLS).
        pool = redis.asyncio.ConnectionPool(**node.connection_kwargs)
        node_client = redis.asyncio.Redis(connection_pool=pool)
        return node_client.pubsub(), node_client
    return client.pubsub(), None


class Subscription:
    """An async iterator over change events and resets; also an async
    context manager.

    Made (and started) by ``redismem.aio.MemoryStore.subscribe``. A
    Subscription made directly connects on ``start()``, on entering ``async
    with`` or on the first item asked for, whichever comes first;
    ``start="now"`` means that moment. ``get(timeout)`` returns None when
    nothing came in time. ``resume_token`` is the position just after the last
    item handed out.
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
        self._started = False

    async def start(self) -> None:
        """Subscribe and place the namespaces (done once; later calls no-op)."""
        if not self._started:
            await self._connect()
            self._started = True

    @property
    def resume_token(self) -> str:
        """Opaque token: the position just after the last item handed out."""
        return self._merger.resume_token

    @property
    def namespaces(self) -> list[str]:
        """The namespaces the subscription follows so far."""
        return sorted(self._merger.feeds)

    async def get(self, timeout: float | None = None) -> FeedItem | None:
        """The next event or reset; None if none came within ``timeout`` s."""
        await self.start()
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
                await self._step(remaining)
            except CONNECTION_ERRORS as exc:
                await self._lost(exc, deadline)

    async def aclose(self) -> None:
        """Stop listening and release the connection."""
        self._closed = True
        await self._disconnect()
        logger.info("subscription closed")

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedItem:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _step(self, wait: float) -> None:
        """Connect if needed, serve what namespaces need, read one message."""
        if self._pubsub is None:
            await self._connect()
        await self._serve()
        if self._merger.ready:
            return
        message = await self._pubsub.get_message(timeout=wait)
        if message is not None:
            self._on_message(message)

    async def _connect(self) -> None:
        pubsub, self._node_client = await pubsub_client(self.client, self._failures)
        try:
            held = await self._subscribe(pubsub)
        except BaseException:
            await pubsub.aclose()
            await self._disconnect()
            raise
        self._pubsub = pubsub

        reconnect = bool(self._merger.feeds)
        await self._place_namespaces()
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

    async def _subscribe(self, pubsub: Any) -> list[dict[str, Any]]:
        """Subscribe and wait for every confirmation; return messages held."""
        channels = [NamespaceKeys(ns).channel for ns in self._merger.exact_namespaces]
        globs = [channel_pattern(glob) for glob in self._merger.globs]
        if channels:
            await pubsub.subscribe(*channels)
        if globs:
            await pubsub.psubscribe(*globs)

        held, confirmed = [], 0
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while confirmed < len(channels) + len(globs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise redis.asyncio.TimeoutError("no subscribe confirmation from Redis")
            message = await pubsub.get_message(timeout=remaining)
            if message is None:
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
            elif message["type"] in ("message", "pmessage"):
                held.append(message)
        return held

    async def _place_namespaces(self) -> None:
        """Find the namespaces the patterns match, with their heads."""
        merger = self._merger
        found = set(merger.exact_namespaces) | set(merger.resumed_namespaces)
        for glob in merger.globs:
            names = self.client.sscan_iter(NAMESPACE_DIRECTORY, match=glob)
            found.update([text(name) async for name in names])
        new = sorted(found - set(merger.feeds))

        heads: list[LogPosition | None] = [None] * len(new)
        if new and merger.start == "now" and not merger.has_started:
            heads = await run_pipelined(self.client, [feed.head(ns) for ns in new])
        for namespace, head in zip(new, heads, strict=True):
            merger.place(namespace, head)

    async def _serve(self) -> None:
        """Read the history pages and snapshots that namespaces wait for."""
        while (need := self._merger.next_need()) is not None:
            namespace_feed, kind = need
            namespace = namespace_feed.namespace
            if kind is Need.HISTORY:
                page = await run(
                    self.client, feed.history(namespace, namespace_feed.position)
                )
                self._merger.on_history(namespace, page)
            else:
                snapshot = await run(self.client, feed.snapshot(namespace))
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

    async def _lost(self, exc: BaseException, deadline: float | None) -> None:
        self._failures += 1
        delay = backoff_delay(self._failures)
        logger.info(
            "subscription connection lost (%s); retry %d in %.2fs",
            exc,
            self._failures,
            delay,
        )
        await self._disconnect()
        if deadline is not None:
            delay = min(delay, max(deadline - time.monotonic(), 0))
        await asyncio.sleep(delay)

    async def _disconnect(self) -> None:
        for closeable in (self._pubsub, self._node_client):
            if closeable is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await closeable.aclose()
        self._pubsub = self._node_client = None
