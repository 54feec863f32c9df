"""Coalescing: a connection that falls behind gets each key's latest event.

A subscription asks for it (WebSocket ``"coalesce": true``, SSE
``?coalesce=1``). While such a connection is behind, i.e. its unsent bytes
are above ``mark``, events of the namespaces it coalesces are not written
but held in an ordered map keyed by (namespace, key). A newer event of a key
replaces the held one and moves to the end of the map, so the events that
are finally written still come in increasing seq order per namespace; the
one written says how many it replaced (``"coalesced": n``). Once the peer
has taken enough bytes, the held events are written in order.

Held events are bounded in bytes too: a connection that still overflows
(too many distinct keys) is evicted exactly like any slow consumer, and its
client resumes from its last token.

Why the written events stay a valid resume position: every event not
written was replaced by a later event of the same key that is written
after it, so resuming after any written token loses no key's latest state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from redismem.server.events import OutgoingEvent
from redismem.server.patterns import Pattern

if TYPE_CHECKING:
    from redismem.server.backpressure import Connection

#: How often a connection with held events looks whether its peer caught up
#: when the transport offers no wake-up below the mark.
POLL_SECONDS = 0.01


class Counter(Protocol):
    """The part of a Prometheus counter the coalescer uses."""

    def inc(self, amount: float = 1) -> None: ...


class Coalescer:
    """The held events of one coalescing connection."""

    def __init__(
        self, conn: Connection, superseded: Counter, *, mark: int, max_bytes: int
    ) -> None:
        self.conn = conn
        self.superseded = superseded
        self.mark = mark
        self.max_bytes = max_bytes
        self.patterns: list[Pattern] = []
        #: (namespace, key) -> (latest event, how many older ones it replaced);
        #: a dict keeps insertion order, and a replaced entry is re-inserted.
        self.held: dict[tuple[str, str], tuple[OutgoingEvent, int]] = {}
        self.held_bytes = 0
        self._flusher: asyncio.Task[None] | None = None

    def add(self, pattern: Pattern) -> None:
        """Coalesce the namespaces ``pattern`` matches."""
        self.patterns.append(pattern)

    def remove(self, pattern: Pattern) -> None:
        """Stop coalescing ``pattern`` (events already held are still written)."""
        if pattern in self.patterns:
            self.patterns.remove(pattern)

    def hold(self, event: OutgoingEvent) -> bool:
        """Hold ``event`` back if the connection is behind; say whether it did.

        An event that is not held is written by the caller as usual.
        """
        conn = self.conn
        if conn.closed:
            return False
        if not self.held and conn.buffered() <= self.mark:
            return False
        namespace = event.namespace
        if not any(pattern.matches(namespace) for pattern in self.patterns):
            return False

        entry = (namespace, event.key)
        replaced = self.held.pop(entry, None)
        superseded = 0
        if replaced is not None:
            older, count = replaced
            superseded = count + 1
            self.held_bytes -= len(older.payload)
            self.superseded.inc()
        self.held[entry] = (event, superseded)
        self.held_bytes += len(event.payload)

        if self.held_bytes > self.max_bytes:
            # Too many distinct keys to hold: the client resumes instead.
            self.held.clear()
            self.held_bytes = 0
            conn.evict()
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return True

    async def _flush(self) -> None:
        """Write the held events, in order, whenever the peer has caught up."""
        conn = self.conn
        try:
            while self.held and not conn.closed:
                while conn.buffered() > self.mark and not conn.closed:
                    await conn.writable()
                    if conn.buffered() > self.mark:
                        await asyncio.sleep(POLL_SECONDS)
                self._write_held()
        finally:
            self._flusher = None

    def _write_held(self) -> None:
        conn = self.conn
        while self.held and not conn.closed and conn.buffered() <= self.mark:
            entry = next(iter(self.held))
            event, superseded = self.held.pop(entry)
            self.held_bytes -= len(event.payload)
            conn.replay(event.coalesced(superseded) if superseded else event)
