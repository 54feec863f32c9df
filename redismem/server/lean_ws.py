"""uvicorn's sans-I/O WebSocket protocol, lighter on memory per idle connection.

``redismem serve`` runs thousands of mostly idle WebSockets, so what each
one keeps matters. uvicorn's ``WebSocketsSansIOProtocol`` gives every
connection an ``asyncio.Queue`` for incoming messages and an
``asyncio.Event`` for write readiness: five deques of about 760 bytes each,
though uvicorn stops reading while a message waits, so few ever queue up.
:class:`LeanWebSocketProtocol` is the same protocol with a list-backed queue
and a flag in their place, and the fan-out forgets the handshake's headers
once the connection is accepted (:func:`release_handshake`). Everything
else, the frames written straight to the transport included, is uvicorn's.
SSE streams wait on the same flag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)


class ReceiveQueue:
    """The incoming messages of one connection, for its one reader (the app)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        """Queue a message and wake the reader."""
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        """Whether no message is waiting."""
        return not self._items

    async def get(self) -> Any:
        """The next message, waiting for one if need be."""
        while not self._items:
            # ASGI has one receiver per connection, so one waiter suffices.
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Flag:
    """An ``asyncio.Event`` without a deque: waiters are listed only while waiting."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is up."""
        return self._value

    def set(self) -> None:
        """Raise the flag and wake every waiter."""
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            _wake(waiter, True)

    def clear(self) -> None:
        """Lower the flag."""
        self._value = False

    async def wait(self) -> bool:
        """Wait until the flag is up."""
        if self._value:
            return True
        await self._waiting(asyncio.get_running_loop().create_future())
        return True

    async def wait_at_most(self, timeout: float) -> bool:
        """Wait until the flag is up or ``timeout`` seconds pass; whether it went up.

        Unlike ``asyncio.wait_for(event.wait(), timeout)``, this makes no task:
        an idle SSE stream waits here between keep-alives.
        """
        if self._value:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter, False)
        try:
            return await self._waiting(waiter)
        finally:
            timer.cancel()

    async def _waiting(self, waiter: asyncio.Future[bool]) -> bool:
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def _wake(waiter: asyncio.Future[bool], raised: bool) -> None:
    if not waiter.done():
        waiter.set_result(raised)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with lighter per-connection state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Replaced before any message or write can arrive.
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()


def release_handshake(proto: Any) -> None:
    """Drop what a sans-I/O protocol keeps of its handshake but never reads again.

    The request is also held by websockets' parser (a local of its parsing
    generator), so its headers are emptied rather than only unreferenced.
    """
    request = getattr(proto, "request", None)
    if request is not None:
        request.headers.clear()
    proto.request = proto.response = None
