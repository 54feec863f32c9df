"""Realtime server throughput, latency and memory, against a broadcast() relay.

One server process; the load generator (``server_load.py``: raw-socket
clients that only count frames and time a sample of them, in one or more
processes) and the writer run in processes of their own. For each scenario:
N clients subscribe to one namespace, the writer puts records at a fixed
rate through the same Lua scripts, and we report deliveries per second,
p50/p99 write-to-client latency, the server's CPU time per delivery and its
resident memory per idle connection. The baseline, measured in the same
run, is ``ws_relay_baseline.py``: raw Redis pub/sub through websockets'
``broadcast()``.

Usage: python -m benchmarks.bench_server [--seconds 5] [--quick] [--plan 1000x100]
       [--only ws] [--load-processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server_load import load_process, raise_fd_limit  # noqa: E402
from redismem import MemoryStore  # noqa: E402
from redismem.connection import connect  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402

NAMESPACE = "bench"
CHANNEL = f"rm:ch:{NAMESPACE}"
SAMPLED_CLIENTS = 20  # clients that decode every frame to time it, in all


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


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
    server_us_per_delivery: float


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
    load_processes: int,
    log: Path,
) -> Result:
    """Start the server, connect the clients, write for ``seconds``, measure."""
    with log.open("ab") as stderr:
        server = subprocess.Popen(
            server_args,
            preexec_fn=raise_fd_limit,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_port(port)
        time.sleep(0.5)
        base_rss = rss_kb(server.pid)

        loaders = start_loaders(kind, port, connections, subscribe, load_processes)
        time.sleep(1.0)
        idle_rss = rss_kb(server.pid)

        writer = multiprocessing.Process(
            target=writer_process, args=(redis_url, rate, seconds)
        )
        cpu_before, started = cpu_seconds(server.pid), time.monotonic()
        load_cpu_before = sum(cpu_seconds(loader.pid) for loader, _ in loaders)
        wall_start = time.time()
        writer.start()
        writer.join()
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(server.pid) - cpu_before) / elapsed
        load_cpu_after = sum(cpu_seconds(loader.pid) for loader, _ in loaders)
        load_cpu = (load_cpu_after - load_cpu_before) / elapsed
        time.sleep(1.0)
        # The server's whole cost of the run, backlog included, per delivery.
        server_cpu_total = cpu_seconds(server.pid) - cpu_before
        reports = []
        for _loader, pipe in loaders:
            pipe.send("stop")
        for loader, pipe in loaders:
            reports.append(pipe.recv())
            loader.join(30)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()

    # From the first write to the last delivery: a backlog counts against us.
    events = sum(report["events"] for report in reports)
    span = max(1e-9, max(report["last"] for report in reports) - wall_start)
    latencies = sorted(x for report in reports for x in report["latencies"])
    latencies = latencies or [float("nan")]
    return Result(
        name,
        connections,
        rate * connections,
        events / span,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        (idle_rss - base_rss) / connections,
        sum(report["closed"] for report in reports),
        cpu,
        load_cpu,
        server_cpu_total / max(1, events) * 1e6,
    )


def start_loaders(
    kind: str, port: int, connections: int, subscribe: bool, processes: int
) -> list[tuple[multiprocessing.Process, Any]]:
    """The clients: counting load processes and one latency probe.

    The load processes hold all but SAMPLED_CLIENTS clients and run in the
    background (they stand in for other machines). The probe holds the
    sampled clients and runs at normal priority, so a sampled frame is read
    when it arrives, not when a busy load process gets round to it. The
    server writes to its connections in the order they subscribed, so the
    probe's clients subscribe spread over that order: the load processes
    connect in as many waves as the probe has clients, and one probe client
    joins after each wave.
    """
    sampled = min(SAMPLED_CLIENTS, connections)
    waves = max(1, sampled)
    bulk = []
    for number in range(processes):
        share = range(number, connections - sampled, processes)
        bulk.append(_loader(kind, port, share, 0, subscribe, True, waves))
    probe = range(connections - sampled, connections)
    prober = _loader(kind, port, probe, sampled, subscribe, False, waves)
    for wave in range(waves):
        for group in (bulk, [prober]):
            for _loader_process, pipe in group:
                if wave:
                    pipe.send("go")
            _wait_ready(group)
    return [*bulk, prober]


def _loader(
    kind: str, port: int, indexes: range, sampled: int, subscribe: bool,
    background: bool, waves: int,
) -> tuple[multiprocessing.Process, Any]:  # fmt: skip
    parent, child = multiprocessing.Pipe()
    loader = multiprocessing.Process(
        target=load_process,
        args=(kind, port, indexes, sampled, subscribe, child, background, waves),
        daemon=True,
    )
    loader.start()
    return loader, parent


def _wait_ready(loaders: list[tuple[multiprocessing.Process, Any]]) -> None:
    for _loader_process, pipe in loaders:
        assert pipe.poll(120), "clients did not connect"
        pipe.recv()


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
    parser.add_argument(
        "--plan",
        action="append",
        metavar="CLIENTSxRATE",
        help="clients and writes/s, e.g. 1000x100 (repeatable; replaces the default)",
    )
    parser.add_argument(
        "--only",
        choices=("baseline", "ws", "sse"),
        action="append",
        help="run only these servers (repeatable)",
    )
    parser.add_argument(
        "--load-processes",
        type=int,
        default=2,
        help="processes the clients are spread over",
    )
    options = parser.parse_args()
    raise_fd_limit()

    # Offered loads: the targets (100k/s at 1,000, 80k/s at 5,000), and
    # twice as much at 1,000 to show the headroom.
    plans = [(1000, 100), (1000, 200), (5000, 16)]
    if options.quick:
        plans = plans[:1]
    if options.plan:
        plans = [tuple(map(int, plan.split("x"))) for plan in options.plan]
    servers = [
        ("baseline ws broadcast()", baseline_args, "ws", False),
        ("redismem ws", redismem_args, "ws", True),
    ]
    wanted = set(options.only or ("baseline", "ws", "sse"))
    servers = [
        server
        for server, short in zip(servers, ("baseline", "ws"), strict=True)
        if short in wanted
    ]

    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}")
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-server-{os.getpid()}"
    redis = RedisServer(directory)
    redis.start()
    try:
        results = []
        scenarios = [
            (server, connections, rate)
            for connections, rate in plans
            for server in servers
        ]
        if "sse" in wanted:
            sse = ("redismem sse", redismem_args, "sse", False)
            scenarios.append((sse, plans[0][0], plans[0][1]))
        for (name, args, kind, subscribe), connections, rate in scenarios:
            port = free_port()
            results.append(
                run_scenario(
                    name,
                    args(redis.url, port),
                    kind,
                    subscribe,
                    redis.url,
                    connections,
                    rate,
                    options.seconds,
                    port,
                    options.load_processes,
                    directory / "servers.log",
                )
            )
            print_result(results[-1])
        print_ratios(results)
        print(f"server logs: {directory / 'servers.log'}")
    finally:
        redis.kill()


def print_result(result: Result) -> None:
    print(
        f"{result.name:<24} {result.connections:>5} conns  "
        f"offered {result.offered:>7}/s  "
        f"delivered {result.delivered_per_s:>9.0f}/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  "
        f"{result.kb_per_idle_connection:5.1f} KB/idle conn  evicted {result.evicted}"
        f"  CPU server {result.server_cpu:.0%} clients {result.load_cpu:.0%}"
        f"  server {result.server_us_per_delivery:.1f} us/delivery",
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
                f"p99 {ours.p99_ms / base.p99_ms:.2f}x, server CPU per delivery "
                f"{ours.server_us_per_delivery / base.server_us_per_delivery:.2f}x"
            )


if __name__ == "__main__":
    main()
