"""The load generator of bench_server.py: many raw-socket WebSocket or SSE clients.

It runs in a process of its own (or several), on uvloop, and must never be
the bottleneck it measures. So each client is a buffered asyncio protocol
that reads into one preallocated buffer: a WebSocket client walks the frame
headers to count text frames and skips their payloads; an SSE client counts
event markers. Only a few sampled clients decode every event's JSON to time
it against the writer's clock.

The sockets are spread over source addresses 127.0.0.2, 127.0.0.3, ... (the
kernel picks ports per address and destination), and closed with a reset
instead of a FIN, so no TIME_WAIT piles up: 5,000 connections and more can
be opened run after run. The counting load processes run under SCHED_IDLE,
so they take only the CPU the server leaves on the two cores they share
with it (real clients sit on other machines); the latency probe runs at
normal priority, so its reads are not delayed behind them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import socket
import struct
import time
from typing import Any

import orjson

#: Client sockets are spread over this many loopback source addresses.
SOURCE_ADDRESSES = 16
#: Connections opened at once, so the server's accept backlog never overflows.
CONNECT_CONCURRENCY = 100
#: Large enough for every frame the benchmark sends.
BUFFER_BYTES = 256 * 1024
# Linux: pick the source port at connect(), per destination, not at bind().
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# Present once in every SSE change event (the acknowledgement has another type).
SSE_EVENT_MARK = b'data: {"type":"event"'
SSE_READY_MARK = b"event: subscribed"
WS_READY_MARK = b'"type":"subscribed"'
TEXT_OPCODE = 0x1


def raise_fd_limit() -> None:
    """Allow as many open sockets as the hard limit does."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (clients must mask, RFC 6455 5.3)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + body


def ws_request(port: int, path: str) -> bytes:
    """An HTTP/1.1 upgrade request for a WebSocket."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def sse_request(path: str) -> bytes:
    """An HTTP/1.1 request for an event stream."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def written_at(event: bytes) -> float:
    """The writer's clock, which it puts in every record's value."""
    return float(orjson.loads(event)["value"]["t"])


class Client(asyncio.BufferedProtocol):
    """What every client shares: the request, the buffer and the counts."""

    def __init__(self, request: bytes, sampled: bool) -> None:
        self.request = request
        self.sampled = sampled
        self.buffer = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buffer)
        self.kept = 0  # bytes of an incomplete unit kept at the buffer's start
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.events = 0
        self.first = self.last = 0.0
        self.latencies: list[float] = []
        self.closed_by_server = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_by_server = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.kept :]

    def buffer_updated(self, nbytes: int) -> None:
        end = self.kept + nbytes
        start = 0
        if not self.upgraded:
            head = self.buffer.find(b"\r\n\r\n", 0, end)
            if head < 0:
                self.kept = end
                return
            self.upgraded = True
            start = head + 4
            self.on_upgraded()

        consumed = self.consume(start, end)
        # Move an incomplete frame (or a marker's possible prefix) to the front.
        kept = end - consumed
        if kept and consumed:
            self.buffer[:kept] = self.buffer[consumed:end]
        self.kept = kept

    def on_upgraded(self) -> None:
        """The response headers are in."""

    def consume(self, start: int, end: int) -> int:
        """Count what ``buffer[start:end]`` holds; return where it stopped."""
        raise NotImplementedError

    def counted(self, count: int, now: float) -> None:
        self.events += count
        self.first = self.first or now
        self.last = now


class WebSocketClient(Client):
    """Counts text frames by walking their headers; payloads are skipped."""

    def __init__(self, request: bytes, subscribe: bytes | None, sampled: bool) -> None:
        super().__init__(request, sampled)
        self.subscribe = subscribe

    def on_upgraded(self) -> None:
        if self.subscribe is None:
            self.ready.set_result(None)  # the baseline relays to every client
        else:
            self.transport.write(masked_text_frame(self.subscribe))

    def consume(self, start: int, end: int) -> int:
        buffer = self.buffer
        position = start
        frames = 0
        first_text = (0, 0)
        sampled: list[tuple[int, int]] = []
        while position + 2 <= end:
            length = buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                if position + 4 > end:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if position + 10 > end:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            following = position + header + length
            if following > end:
                break
            if buffer[position] & 0x0F == TEXT_OPCODE:
                if not frames:
                    first_text = (position + header, following)
                frames += 1
                if self.sampled:
                    sampled.append((position + header, following))
            position = following

        if frames and not self.ready.done():
            self._acknowledged(first_text)
            frames -= 1
            sampled = sampled[1:]
        if frames:
            now = time.time()
            self.counted(frames, now)
            for begin, finish in sampled:
                self.latencies.append(now - written_at(buffer[begin:finish]))
        return position

    def _acknowledged(self, frame: tuple[int, int]) -> None:
        # The first text frame answers the subscription; anything but an
        # acknowledgement would leave this client uncounted, so it fails.
        payload = bytes(self.buffer[frame[0] : frame[1]])
        if WS_READY_MARK in payload:
            self.ready.set_result(None)
        else:
            self.ready.set_exception(RuntimeError(f"not subscribed: {payload!r}"))


class SseClient(Client):
    """Counts change events in the stream by their marker."""

    def consume(self, start: int, end: int) -> int:
        buffer = self.buffer
        if not self.ready.done() and buffer.find(SSE_READY_MARK, start, end) >= 0:
            self.ready.set_result(None)
        # Keep what could be the start of a marker split across two reads.
        stop = max(start, end - len(SSE_EVENT_MARK) + 1)
        now = time.time()
        if self.sampled:
            stop = self._time_events(start, end, stop, now)
        counted_end = min(end, stop + len(SSE_EVENT_MARK) - 1)
        count = buffer.count(SSE_EVENT_MARK, start, counted_end)
        if count:
            self.counted(count, now)
        return stop

    def _time_events(self, start: int, end: int, stop: int, now: float) -> int:
        """Time every whole event line; stop before one that is cut off."""
        buffer = self.buffer
        position = buffer.find(SSE_EVENT_MARK, start, end)
        while position >= 0:
            begin = position + len(b"data: ")
            line_end = buffer.find(b"\n", begin, end)
            if line_end < 0:
                return position
            self.latencies.append(now - written_at(buffer[begin:line_end]))
            position = buffer.find(SSE_EVENT_MARK, line_end, end)
        return stop


def client_socket(index: int) -> socket.socket:
    """A socket bound to the index's source address; closing it resets."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    # Close with RST: no TIME_WAIT keeps the address and port busy after us.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((f"127.0.0.{2 + index % SOURCE_ADDRESSES}", 0))
    return sock


async def open_client(client: Client, index: int, port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = client_socket(index)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    await loop.create_connection(lambda: client, sock=sock)
    await client.ready


async def load(
    kind: str,
    port: int,
    indexes: range,
    sampled: int,
    subscribe: bool,
    conn: Any,
    waves: int = 1,
) -> None:
    """Open the clients, say ready, count until told to stop, then report.

    The clients connect in ``waves`` parts: after each one the process says
    "ready" and waits for "go", so the orchestrator can interleave the
    connections of several processes in the order it wants.
    """
    subscribe_frame = orjson.dumps({"type": "subscribe", "pattern": "bench"})
    clients: list[Client] = []
    # Sampled clients are spread over the connection order: the server
    # writes to its connections in order, so the first ones get events first.
    stride = max(1, len(indexes) // max(1, sampled))
    for number in range(len(indexes)):
        is_sampled = number % stride == 0 and number // stride < sampled
        if kind == "ws":
            clients.append(
                WebSocketClient(
                    ws_request(port, "/ws"),
                    subscribe_frame if subscribe else None,
                    is_sampled,
                )
            )
        else:
            clients.append(SseClient(sse_request("/sse?pattern=bench"), is_sampled))

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def opened(client: Client, index: int) -> None:
        async with gate:
            await asyncio.wait_for(open_client(client, index, port), 60)

    loop = asyncio.get_running_loop()
    for wave in range(waves):
        if wave:
            await loop.run_in_executor(None, conn.recv)  # "go"
        part = slice(wave * len(clients) // waves, (wave + 1) * len(clients) // waves)
        await asyncio.gather(*map(opened, clients[part], indexes[part]))
        conn.send("ready")

    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
    conn.send(
        {
            "events": sum(c.events for c in clients),
            "first": min((c.first for c in clients if c.first), default=0.0),
            "last": max((c.last for c in clients), default=0.0),
            "latencies": [x for c in clients for x in c.latencies],
            "closed": sum(1 for c in clients if c.closed_by_server),
        }
    )
    for client in clients:
        client.transport.close()


def load_process(
    kind: str,
    port: int,
    indexes: range,
    sampled: int,
    subscribe: bool,
    conn: Any,
    background: bool = True,
    waves: int = 1,
) -> None:
    """Entry point of one load process (``background``: under SCHED_IDLE)."""
    raise_fd_limit()
    if background and hasattr(os, "SCHED_IDLE"):
        # The clients stand in for remote machines: they should only take
        # the CPU the server does not want on the cores they share with it.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        import uvloop
    except ImportError:
        asyncio.run(load(kind, port, indexes, sampled, subscribe, conn, waves))
    else:
        uvloop.run(load(kind, port, indexes, sampled, subscribe, conn, waves))
