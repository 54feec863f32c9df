"""Realtime server throughput, latency and memory, against a broadcast() relay.

One server process; the load generator (raw-socket clients that only count
frames and time a sample of them) and the writer run in processes of their
own. For each scenario: N clients subscribe to one namespace, the writer
puts records at a fixed rate through the same Lua scripts, and we report
deliveries per second, p50/p99 write-to-client latency, and the server's
resident memory per idle connection. The baseline, measured in the same
run, is ``ws_relay_baseline.py``: raw Redis pub/sub through websockets'
``broadcast()``.

Usage: python benchmarks/bench_server.py [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redismem import MemoryStore  # noqa: E402
from redismem.connection import connect  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402

NAMESPACE = "bench"
CHANNEL = f"rm:ch:{NAMESPACE}"
SAMPLED_CLIENTS = 20  # clients that decode every frame to time it


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# The load generator -------------------------------------------------------


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + body


# Present once in every event, whether relayed raw (baseline) or framed.
EVENT_MARK = f'"ns":"{NAMESPACE}"'.encode()
TIME_MARK = b'"value":{"t":'
READY_MARK = b'"type":"subscribed"'
TAIL = max(len(EVENT_MARK), len(READY_MARK)) - 1


class Client(asyncio.Protocol):
    """A WebSocket or SSE client that counts events as they arrive.

    Most clients only count event markers in the byte stream (C speed), so
    the load generator is not the bottleneck; a few sampled ones decode every
    frame to time it from the writer's timestamp.
    """

    def __init__(
        self, kind: str, request: bytes, subscribe: bytes | None, sampled: bool
    ) -> None:
        self.kind = kind
        self.request = request
        self.subscribe = subscribe
        self.sampled = sampled
        self.buffer = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.events = 0
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        self.tail = b""
        self.closed_by_server = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_by_server = True

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded = True
            data, self.buffer = self.buffer[end + 4 :], b""
            if self.subscribe is not None:
                self.transport.write(masked_text_frame(self.subscribe))
            else:
                self.ready.set_result(None)

        stream = self.tail + data
        if not self.ready.done() and READY_MARK in stream:
            self.ready.set_result(None)
        # Markers wholly inside the kept tail were counted last time.
        count = stream.count(EVENT_MARK) - self.tail.count(EVENT_MARK)
        if count:
            now = time.time()
            self.events += count
            self.first = self.first or now
            self.last = now
            if self.sampled:
                self._time_events(data, now)
        # Keep enough to find a marker split across two reads.
        self.tail = stream[-TAIL:]

    def _time_events(self, data: bytes, now: float) -> None:
        # Sampled clients read the writer's timestamp out of every event.
        self.buffer += data
        while True:
            start = self.buffer.find(TIME_MARK)
            comma = self.buffer.find(b",", start) if start >= 0 else -1
            if start < 0 or comma < 0:
                self.buffer = self.buffer[start:] if start >= 0 else b""
                return
            written = float(self.buffer[start + len(TIME_MARK) : comma])
            self.latencies.append(now - written)
            self.buffer = self.buffer[comma:]


def ws_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def load(kind: str, port: int, count: int, subscribe: bool, conn: Any) -> None:
    loop = asyncio.get_running_loop()
    subscribe_frame = json.dumps({"type": "subscribe", "pattern": NAMESPACE}).encode()
    clients: list[Client] = []
    for i in range(count):
        if kind == "ws":
            request = ws_request(port, "/ws")
            factory = Client(
                kind,
                request,
                subscribe_frame if subscribe else None,
                i < SAMPLED_CLIENTS,
            )
        else:
            request = (
                f"GET /sse?pattern={NAMESPACE} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            factory = Client(kind, request, None, i < SAMPLED_CLIENTS)
        await loop.create_connection(lambda f=factory: f, "127.0.0.1", port)
        clients.append(factory)
        if i % 200 == 199:
            await asyncio.gather(*(c.ready for c in clients))
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients)), 60)
    conn.send("ready")

    await loop.run_in_executor(None, conn.recv)  # "stop"
    events = sum(c.events for c in clients)
    first = min((c.first for c in clients if c.first), default=0.0)
    last = max((c.last for c in clients), default=0.0)
    latencies = [x for c in clients for x in c.latencies]
    closed = sum(1 for c in clients if c.closed_by_server)
    conn.send(
        {
            "events": events,
            "first": first,
            "last": last,
            "latencies": latencies,
            "closed": closed,
        }
    )
    for client in clients:
        client.transport.close()


def load_process(kind: str, port: int, count: int, subscribe: bool, conn: Any) -> None:
    raise_fd_limit()
    run(load(kind, port, count, subscribe, conn))


def run(main: Any) -> None:
    """Run on uvloop when it is installed (it is for the server too)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


# The writer -----------------------------------------------------------------


def writer_process(url: str, rate: int, seconds: float) -> None:
    store = MemoryStore(connect(url))
    started = time.monotonic()
    written = 0
    while (elapsed := time.monotonic() - started) < seconds:
        # Catch up with the offered rate, one pipelined batch per tick.
        due = int(rate * elapsed) + 1 - written
        if due > 0:
            payload = {"t": time.time(), "pad": "x" * 64}
            batch = [
                (NAMESPACE, f"k{(written + j) % 100}", payload) for j in range(due)
            ]
            store.put_many(batch)
            written += due
        time.sleep(0.005)


# Scenarios ------------------------------------------------------------------


@dataclass
class Result:
    name: str
    connections: int
    offered: int
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    kb_per_idle_connection: float
    evicted: int
    server_cpu: float
    load_cpu: float


def run_scenario(
    name: str,
    server_args: list[str],
    kind: str,
    subscribe: bool,
    redis_url: str,
    connections: int,
    rate: int,
    seconds: float,
    port: int,
) -> Result:
    server = subprocess.Popen(
        server_args,
        preexec_fn=raise_fd_limit,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        time.sleep(0.5)
        base_rss = rss_kb(server.pid)

        parent, child = multiprocessing.Pipe()
        loader = multiprocessing.Process(
            target=load_process,
            args=(kind, port, connections, subscribe, child),
            daemon=True,
        )
        loader.start()
        assert parent.poll(120), "clients did not connect"
        parent.recv()
        time.sleep(1.0)
        idle_rss = rss_kb(server.pid)

        writer = multiprocessing.Process(
            target=writer_process, args=(redis_url, rate, seconds)
        )
        cpu_before, started = cpu_seconds(server.pid), time.monotonic()
        load_cpu_before, wall_start = cpu_seconds(loader.pid), time.time()
        writer.start()
        writer.join()
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(server.pid) - cpu_before) / elapsed
        load_cpu = (cpu_seconds(loader.pid) - load_cpu_before) / elapsed
        time.sleep(1.0)
        parent.send("stop")
        report = parent.recv()
        loader.join(30)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()

    # From the first write to the last delivery: a backlog counts against us.
    span = max(1e-9, report["last"] - wall_start)
    latencies = sorted(report["latencies"]) or [float("nan")]
    return Result(
        name,
        connections,
        rate * connections,
        report["events"] / span,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        (idle_rss - base_rss) / connections,
        report["closed"],
        cpu,
        load_cpu,
    )


def wait_port(port: int, timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def redismem_args(redis_url: str, port: int) -> list[str]:
    return [
        sys.executable, "-c", "from redismem.cli import main; main()",
        "--url", redis_url, "serve", "--no-auth", "--port", str(port),
        "--max-connections", "20000", "--max-connections-per-subject", "20000",
        "--max-connections-per-address", "20000", "--heartbeat", "30",
    ]  # fmt: skip


def baseline_args(redis_url: str, port: int) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "ws_relay_baseline.py"),
        str(port),
        redis_url,
        CHANNEL,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="1,000 connections only")
    options = parser.parse_args()
    raise_fd_limit()

    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-server-{os.getpid()}"
    redis = RedisServer(directory)
    redis.start()
    try:
        # Offered loads: the targets (100k/s at 1,000, 80k/s at 5,000), and
        # twice as much at 1,000 to show the headroom.
        # (More 5,000-client runs exhaust the ephemeral ports: TIME_WAIT.)
        plans = [(1000, 100), (1000, 200), (5000, 16)]
        if options.quick:
            plans = plans[:1]
        results = []
        for connections, rate in plans:
            for name, args, subscribe in (
                ("baseline ws broadcast()", baseline_args, False),
                ("redismem ws", redismem_args, True),
            ):
                port = free_port()
                results.append(
                    run_scenario(
                        name,
                        args(redis.url, port),
                        "ws",
                        subscribe,
                        redis.url,
                        connections,
                        rate,
                        options.seconds,
                        port,
                    )
                )
                print_result(results[-1])
        port = free_port()
        results.append(
            run_scenario(
                "redismem sse",
                redismem_args(redis.url, port),
                "sse",
                False,
                redis.url,
                1000,
                100,
                options.seconds,
                port,
            )
        )
        print_result(results[-1])
        print_ratios(results)
    finally:
        redis.kill()


def print_result(result: Result) -> None:
    print(
        f"{result.name:<24} {result.connections:>5} conns  "
        f"offered {result.offered:>7}/s  "
        f"delivered {result.delivered_per_s:>9.0f}/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  "
        f"{result.kb_per_idle_connection:5.1f} KB/idle conn  evicted {result.evicted}"
        f"  CPU server {result.server_cpu:.0%} clients {result.load_cpu:.0%}",
        flush=True,
    )


def print_ratios(results: list[Result]) -> None:
    by_key = {(r.name, r.connections, r.offered): r for r in results}
    for connections, offered in sorted({(r.connections, r.offered) for r in results}):
        base = by_key.get(("baseline ws broadcast()", connections, offered))
        ours = by_key.get(("redismem ws", connections, offered))
        if base and ours and base.delivered_per_s:
            print(
                f"{connections} conns, {offered}/s offered: redismem/baseline "
                f"deliveries {ours.delivered_per_s / base.delivered_per_s:.2f}x, "
                f"p99 {ours.p99_ms / base.p99_ms:.2f}x"
            )


if __name__ == "__main__":
    main()
