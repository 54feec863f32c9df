"""Client connections as the fan-out sees them, each with a bounded send buffer.

The fan-out calls :meth:`Connection.push` for every event, synchronously: a
connection writes the event's prebuilt bytes straight to its transport. Only
bytes the peer has not taken yet stay in memory; once they exceed
``max_buffer`` bytes the connection is a slow consumer and is evicted: it is
closed with a code (WebSocket 4001) that tells the client to reconnect and
resume from its last token, so memory stays bounded and nothing is lost
silently. A connection with a coalescing subscription holds events back
instead while it is behind (:mod:`redismem.server.coalescing`).

Under uvicorn the transport is reached through the ASGI ``send`` callable (a
bound method of uvicorn's protocol object), which is what lets one frame be
written to thousands of sockets without a task or a queue per connection.
Under any other ASGI server a connection falls back to a byte-bounded queue
drained by its own task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redismem.server import protocol
from redismem.server.auth import Principal
from redismem.server.coalescing import Coalescer, Counter
from redismem.server.events import EventBatch, OutgoingEvent
from redismem.server.lean_ws import Flag, release_handshake
from redismem.server.patterns import Pattern
from redismem.tokens import LogPosition, decode_log_token, encode_feed_token

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: How long an evicted peer may take to read its close frame before the
#: socket is aborted (its buffered bytes are then freed).
EVICTION_GRACE_SECONDS = 10.0


class ConnectionGone(Exception):
    """The client connection closed while the server was still serving it."""


class Connection:
    """One client connection: identity, subscriptions and a way to write."""

    kind = "?"

    def __init__(self, principal: Principal, address: str, max_buffer: int) -> None:
        self.principal = principal
        self.address = address
        self.max_buffer = max_buffer
        self.patterns: set[str] = set()
        self.closed = False
        self.evicted = False
        self.on_evict: Callable[[Connection], None] | None = None
        #: namespace -> (epoch, seq) this connection already has from history
        #: while the live stream is still behind it; see Hub._go_live.
        self.ahead: dict[str, tuple[str, int]] = {}
        #: Set once a subscription asks for coalescing. An instance attribute
        #: (8 bytes): the push paths test it, and a class default would cost
        #: them a lookup through the class on every event.
        self.coalescer: Coalescer | None = None

    def push(self, event: OutgoingEvent) -> None:
        """Write one event (the hot path: no await, no copy)."""
        raise NotImplementedError

    def push_batch(self, batch: EventBatch) -> None:
        """Write several events (the hot path under load)."""
        for event in batch.events:
            self.push(event)

    def replay(self, event: OutgoingEvent) -> None:
        """Write one event read from history; the caller paces with writable()."""
        raise NotImplementedError

    def send(
        self, payload: bytes, *, event: str = "message", event_id: str | None = None
    ) -> None:
        """Write one control frame (acknowledgement, reset, error).

        ``event`` and ``event_id`` become the SSE ``event:`` and ``id:`` lines;
        a WebSocket ignores them.
        """
        raise NotImplementedError

    def buffered(self) -> int:
        """Bytes written but not yet taken by the peer."""
        raise NotImplementedError

    def coalesce(self, pattern: Pattern, superseded: Counter) -> None:
        """Coalesce the events of ``pattern`` while this connection is behind.

        Held events start once the unsent bytes pass a quarter of the bound,
        and may take up to the bound themselves.
        """
        if self.coalescer is None:
            self.coalescer = Coalescer(
                self, superseded, mark=self.max_buffer // 4, max_bytes=self.max_buffer
            )
        self.coalescer.add(pattern)

    def acknowledged(self, positions: dict[str, str | None]) -> str | None:
        """Note where delivery starts; return the acknowledgement's SSE ``id:``."""
        return None

    def reset_id(self, namespace: str, position: LogPosition | None) -> str | None:
        """The SSE ``id:`` of a reset that moves ``namespace`` to ``position``."""
        if position is None:
            return None
        return protocol.sse_event_id(namespace, position.encode())

    async def writable(self) -> None:
        """Wait until the buffer is below its high-water mark."""

    def evict(self) -> None:
        """Close a slow consumer with the code that says "resume"."""
        if self.closed:
            return
        self.closed = self.evicted = True
        logger.info(
            "evicting slow consumer %s (%d bytes buffered)",
            self.address,
            self.buffered(),
        )
        if self.on_evict is not None:
            self.on_evict(self)
        self._close(protocol.CLOSE_RESUME, "slow consumer: reconnect and resume")

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code (SSE: end the stream)."""
        if self.closed:
            return
        self.closed = True
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        raise NotImplementedError


class UvicornWebSocket(Connection):
    """A WebSocket on uvicorn's ``websockets-sansio`` protocol: direct writes."""

    kind = "ws"

    def __init__(
        self, principal: Principal, address: str, max_buffer: int, proto: Any
    ) -> None:
        super().__init__(principal, address, max_buffer)
        self.proto = proto
        self.transport: asyncio.Transport = proto.transport
        # uvicorn keeps the handshake's request and response for the life of
        # the connection but reads them only before the handshake completes;
        # with thousands of idle connections they are a sizeable share of
        # the memory, so let them go.
        if proto.handshake_complete:
            release_handshake(proto)

    @staticmethod
    def supports(send: Send) -> bool:
        """Whether ``send`` belongs to a protocol this class can write through."""
        proto = getattr(send, "__self__", None)
        conn = getattr(proto, "conn", None)
        return (
            any(
                cls.__name__ == "WebSocketsSansIOProtocol"
                for cls in type(proto).__mro__
            )
            and hasattr(proto, "transport")
            and hasattr(proto, "writable")
            and not getattr(conn, "extensions", None)  # frames must be uncompressed
        )

    def push(self, event: OutgoingEvent) -> None:
        if self.closed:
            return
        if self.coalescer is not None and self.coalescer.hold(event):
            return
        if self.transport.get_write_buffer_size() > self.max_buffer:
            self.evict()
            return
        self.transport.write(event.ws_frame)

    def push_batch(self, batch: EventBatch) -> None:
        if self.closed:
            return
        if self.coalescer is not None:
            Connection.push_batch(self, batch)  # one by one: some may be held
            return
        if self.transport.get_write_buffer_size() > self.max_buffer:
            self.evict()
            return
        self.transport.write(batch.ws_frames)

    def replay(self, event: OutgoingEvent) -> None:
        if not self.closed and not self.proto.close_sent:
            self.transport.write(event.ws_frame)

    def send(
        self, payload: bytes, *, event: str = "message", event_id: str | None = None
    ) -> None:
        if not self.closed and not self.proto.close_sent:
            self.transport.write(protocol.websocket_text_frame(payload))

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    async def writable(self) -> None:
        await self.proto.writable.wait()

    def _close(self, code: int, reason: str) -> None:
        proto = self.proto
        if proto.close_sent or self.transport.is_closing():
            return
        # uvicorn's own close, done synchronously so it can be queued from the
        # fan-out loop. The socket stays open until the peer echoes the close
        # (uvicorn then closes it): closing first would make the peer's echo
        # draw a reset that discards what it has not read yet. A peer that
        # never echoes is aborted after the grace period.
        proto.conn.send_close(code, reason)
        self.transport.write(b"".join(proto.conn.data_to_send()))
        proto.close_sent = True
        if proto.read_paused:
            proto.read_paused = False
            self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        proto.close_timer = loop.call_later(
            EVICTION_GRACE_SECONDS, self.transport.abort
        )


class QueuedWebSocket(Connection):
    """A WebSocket on any ASGI server: a bounded queue drained by a task."""

    kind = "ws"

    def __init__(
        self, principal: Principal, address: str, max_buffer: int, send: Send
    ) -> None:
        super().__init__(principal, address, max_buffer)
        self._send = send
        self._queue: list[bytes] = []
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._close_with: tuple[int, str] | None = None
        self._task = asyncio.get_running_loop().create_task(self._drain())

    def push(self, event: OutgoingEvent) -> None:
        if self.coalescer is not None and self.coalescer.hold(event):
            return
        if self._queued > self.max_buffer:
            self.evict()
            return
        self.send(event.payload)

    def replay(self, event: OutgoingEvent) -> None:
        self.send(event.payload)

    async def writable(self) -> None:
        while self._queued > self.max_buffer // 2 and not self.closed:
            await asyncio.sleep(0.01)

    def send(
        self, payload: bytes, *, event: str = "message", event_id: str | None = None
    ) -> None:
        if self.closed:
            return
        self._queue.append(payload)
        self._queued += len(payload)
        self._wakeup.set()

    def buffered(self) -> int:
        return self._queued

    def _close(self, code: int, reason: str) -> None:
        self._close_with = (code, reason)
        self._queue.clear()
        self._queued = 0
        self._wakeup.set()

    async def _drain(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    payload = self._queue.pop(0)
                    self._queued -= len(payload)
                    await self._send(
                        {"type": "websocket.send", "text": payload.decode()}
                    )
                if self._close_with is not None:
                    code, reason = self._close_with
                    await self._send(
                        {"type": "websocket.close", "code": code, "reason": reason}
                    )
                    return
        except Exception:  # the peer went away; the receive loop notices too
            logger.debug("websocket sender stopped", exc_info=True)


class SseStream(Connection):
    """An SSE response: chunks queued, bounded, written by the request's task."""

    kind = "sse"

    def __init__(self, principal: Principal, address: str, max_buffer: int) -> None:
        super().__init__(principal, address, max_buffer)
        self.chunks: list[bytes] = []
        self.queued = 0
        self.wakeup = Flag()
        self.ending: bytes | None = None
        #: For a wildcard stream, every namespace's position as of the last
        #: message queued: each ``id:`` is the subscription-wide feed token
        #: of it, so ``Last-Event-ID`` resumes every namespace. None for an
        #: exact stream, whose events share their prebuilt
        #: ``<namespace> <token>`` id.
        self.feed: dict[str, LogPosition] | None = None

    def resume_feed(self) -> None:
        """Give this (wildcard) stream subscription-wide ``id:`` lines."""
        self.feed = {}

    def push(self, event: OutgoingEvent) -> None:
        if self.coalescer is not None and self.coalescer.hold(event):
            return
        self._push_live(event.sse if self.feed is None else self._feed_message(event))

    def push_batch(self, batch: EventBatch) -> None:
        if self.coalescer is not None or self.feed is not None:
            Connection.push_batch(self, batch)
            return
        self._push_live(batch.sse)

    def replay(self, event: OutgoingEvent) -> None:
        if not self.closed:
            self.send_raw(event.sse if self.feed is None else self._feed_message(event))

    def acknowledged(self, positions: dict[str, str | None]) -> str | None:
        if self.feed is None:
            # One namespace: resume after its token; without one (no log
            # yet, or a reset follows) an empty feed token resumes it from
            # the start of its log, so a reconnect misses nothing either.
            for namespace, token in positions.items():
                if token is not None:
                    return protocol.sse_event_id(namespace, token)
            return encode_feed_token({})
        # A namespace left out (no log yet, or a reset follows) is read from
        # the start of its log on resume.
        for namespace, token in positions.items():
            if token is not None:
                self.feed[namespace] = decode_log_token(token)
        return encode_feed_token(self.feed)

    def reset_id(self, namespace: str, position: LogPosition | None) -> str | None:
        if self.feed is None:
            return super().reset_id(namespace, position)
        if position is None:
            self.feed.pop(namespace, None)
        else:
            self.feed[namespace] = position
        return encode_feed_token(self.feed)

    def _feed_message(self, event: OutgoingEvent) -> bytes:
        assert self.feed is not None
        self.feed[event.namespace] = event.position
        event_id = encode_feed_token(self.feed)
        return protocol.sse_message(event.payload, event_id=event_id)

    async def writable(self) -> None:
        while self.queued > self.max_buffer // 2 and not self.closed:
            await asyncio.sleep(0.01)

    def send(
        self, payload: bytes, *, event: str = "message", event_id: str | None = None
    ) -> None:
        if self.closed:
            return
        self.send_raw(protocol.sse_message(payload, event=event, event_id=event_id))

    def send_raw(self, chunk: bytes) -> None:
        """Queue bytes as they are (a ``retry:`` line)."""
        self.chunks.append(chunk)
        self.queued += len(chunk)
        self.wakeup.set()

    def _push_live(self, chunk: bytes) -> None:
        # Live events meet the bound; a stream over it is evicted, and its
        # client resumes from its token.
        if self.closed:
            return
        if self.queued > self.max_buffer:
            self.evict()
            return
        self.send_raw(chunk)

    def take(self) -> bytes:
        """Everything queued, as one body chunk."""
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.queued = 0
        self.wakeup.clear()
        return body

    def buffered(self) -> int:
        return self.queued

    def end(self, final: bytes) -> None:
        """End the stream after ``final`` (a drain's ``retry:`` advice)."""
        if not self.closed:
            self.ending = final
            self.closed = True
            self.wakeup.set()

    def _close(self, code: int, reason: str) -> None:
        self.wakeup.set()
