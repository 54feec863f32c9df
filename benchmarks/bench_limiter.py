"""Rate limiter benchmarks: ratios against baselines measured in the same run.

    python benchmarks/bench_limiter.py [--url redis://...] [--seconds 2]

Without ``--url`` a private redis-server is started on a free port. Every
measurement runs its load generator in its own process (one client, one
request per round trip unless pipelined), one after the other, against the
same Redis. Reported:

1. one ``hit`` vs a plain ``GET`` from one client (target >= 0.9x);
2. a 3-limit ``hit`` vs a 1-limit ``hit`` (target >= 0.8x);
3. the ``limits`` library (fixed and moving window) doing the same work:
   a hit that also learns remaining and reset, so ``hit`` + ``get_window_stats``;
   round trips per decision are counted in the client;
4. 100 hits in one pipeline (``hit_many``) vs 100 GETs in one pipeline.

Ratios 1 and 2 are measured twice: from separate runs of each workload, and
alternating the two workloads operation by operation in one process, which
exposes both to the same moments of a shared machine (the steadier figure).

Per decision, the table also shows the time Redis spent on the commands the
client sent (``INFO commandstats``) and the client process's own CPU time:
what a hit costs beyond a GET, on either side of the socket.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import redis.connection

from benchmarks.common import interleaved_rates
from redismem.limiter import RateLimiter

#: Operations of each workload per interleaved round.
INTERLEAVED = 3000

ONE = ["token_bucket:1000000000/s,burst=1000000000"]
THREE = [
    "token_bucket:1000000000/s,burst=1000000000",
    "fixed_window:1000000000/day",
    "quota:1000000000/month",
]
PIPELINE = 100


def _measure(url: str, kind: str, seconds: float, result: Any) -> None:
    """Run one load generator for ``seconds``; report decisions per second,
    round trips, Redis time and the client's own CPU time per decision."""
    client = redis.Redis.from_url(url)
    step = _workloads(url, client)[kind]
    step()  # warm up: load scripts, open the connections
    client.config_resetstat()
    round_trips = _count_round_trips()
    sent = _record_command_names()
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        done += step()
    # CPU time of this process: redis-py, the limiter, and the system calls.
    client_usec = (time.process_time() - cpu) * 1e6
    trips = round_trips[0]
    # Time Redis spent executing the commands the client sent, per decision.
    # A script's time includes the commands it runs, which commandstats also
    # lists on their own: only commands the client itself sent are summed.
    stats = client.info("commandstats")
    server_usec = sum(
        stat["usec"]
        for name, stat in stats.items()
        if name.removeprefix("cmdstat_") in sent
    )
    per = max(done, 1)
    result.put((done / elapsed, trips / per, server_usec / per, client_usec / per))


def _interleave(url: str, pair: tuple[str, str], count: int, result: Any) -> None:
    """Time two workloads op by op, alternating, and report their rate ratio."""
    client = redis.Redis.from_url(url)
    workloads = _workloads(url, client)
    measured, baseline = workloads[pair[0]], workloads[pair[1]]
    measured(), baseline()  # warm up: load scripts, open the connections
    ours, theirs = interleaved_rates(
        lambda _i: measured(), lambda _i: baseline(), count
    )
    result.put(ours / theirs)


def interleaved_ratio(url: str, pair: tuple[str, str], count: int) -> float:
    """The rate ratio of two workloads run alternately in one process."""
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    process = context.Process(target=_interleave, args=(url, pair, count, result))
    process.start()
    ratio: float = result.get(timeout=120)
    process.join()
    return ratio


def _count_round_trips() -> list[int]:
    """Count every request redis-py writes (a pipeline is written once)."""
    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    connection_class: Any = redis.connection.AbstractConnection
    connection_class.send_packed_command = counting
    return sent


def _record_command_names() -> set[str]:
    """Collect the names of the commands redis-py sends from now on.

    A limiter sends its checks as packed bytes on held connections, so the name is also
    read back from every packed command.
    """
    names: set[str] = set()
    connection = redis.connection.Connection
    single, many = connection.send_command, connection.pack_commands
    packed_send: Any = redis.connection.AbstractConnection.send_packed_command

    def name(args: Any) -> str:
        text = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        return text.lower().replace(" ", "|")

    def send_command(self: Any, *args: Any, **options: Any) -> Any:
        names.add(name(args))
        return single(self, *args, **options)

    def pack_commands(self: Any, commands: Any) -> Any:
        names.update(name(args) for args in commands)
        return many(self, commands)

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        # *<n>\r\n$<length>\r\n<NAME>\r\n...: the first bulk string.
        first = command if isinstance(command, bytes) else command[0]
        if isinstance(first, (bytes, bytearray)) and first.startswith(b"*"):
            names.add(first.split(b"\r\n", 3)[2].decode().lower())
        packed_send(self, command, check_health)

    connection.send_command = send_command  # type: ignore[method-assign]
    connection.pack_commands = pack_commands  # type: ignore[method-assign]
    abstract: Any = redis.connection.AbstractConnection
    abstract.send_packed_command = send_packed_command
    return names


def _workloads(url: str, client: Any) -> dict[str, Callable[[], int]]:
    limiter = RateLimiter(client)
    client.set("bench:key", "v")
    requests = [(f"p{i}", ONE) for i in range(PIPELINE)]

    def get() -> int:
        client.get("bench:key")
        return 1

    def hit_one() -> int:
        limiter.hit("bench", ONE)
        return 1

    def hit_three() -> int:
        limiter.hit("bench", THREE)
        return 1

    def hit_fixed() -> int:
        limiter.hit("bench", "fixed_window:1000000000/h")
        return 1

    def hit_sliding() -> int:
        # An exact log holds one entry per admitted hit; bound it so the run
        # measures steady state rather than an ever-growing sorted set.
        limiter.hit("bench", "sliding_window:1000000000/2s")
        return 1

    def pipeline_get() -> int:
        pipe = client.pipeline(transaction=False)
        for _ in range(PIPELINE):
            pipe.get("bench:key")
        pipe.execute()
        return PIPELINE

    def pipeline_hit() -> int:
        limiter.hit_many(requests)
        return PIPELINE

    workloads = {
        "get": get,
        "hit_one": hit_one,
        "hit_three": hit_three,
        "hit_fixed": hit_fixed,
        "hit_sliding": hit_sliding,
        "pipeline_get": pipeline_get,
        "pipeline_hit": pipeline_hit,
    }
    workloads.update(_limits_library(url))
    return workloads


def _limits_library(url: str) -> dict[str, Callable[[], int]]:
    from limits import parse, storage, strategies

    backend = storage.RedisStorage(url)
    item = parse("1000000000/hour")
    moving_item = parse("1000000000/2 seconds")
    fixed = strategies.FixedWindowRateLimiter(backend)
    moving = strategies.MovingWindowRateLimiter(backend)

    def limits_fixed() -> int:
        fixed.hit(item, "bench")
        fixed.get_window_stats(item, "bench")  # remaining and reset
        return 1

    def limits_moving() -> int:
        moving.hit(moving_item, "bench")
        moving.get_window_stats(moving_item, "bench")
        return 1

    return {"limits_fixed": limits_fixed, "limits_moving": limits_moving}


Sample = tuple[float, float, float, float]


def run(url: str, kind: str, seconds: float) -> Sample:
    """One measurement in its own process: decisions/s, round trips, Redis
    microseconds and client CPU microseconds per decision."""
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    process = context.Process(target=_measure, args=(url, kind, seconds, result))
    process.start()
    measured = result.get(timeout=seconds + 60)
    process.join()
    return measured


def report(url: str, seconds: float, rounds: int) -> list[str]:
    """Measure everything and return the lines of the report.

    Each workload runs once per round, the rounds interleaved so that a slow
    moment of the machine hits every workload alike. The table shows each
    workload's median round; a ratio is taken within each round (its two
    workloads ran one after the other) and shown as the median with the
    range over the rounds.
    """
    kinds = [
        "get",
        "hit_one",
        "hit_three",
        "hit_fixed",
        "limits_fixed",
        "hit_sliding",
        "limits_moving",
        "pipeline_get",
        "pipeline_hit",
    ]
    samples: dict[str, list[Sample]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            samples[kind].append(run(url, kind, seconds))
    medians = {kind: sorted(runs)[len(runs) // 2] for kind, runs in samples.items()}
    lines = [
        f"{'workload':<16}{'decisions/s':>14}{'round trips':>13}"
        f"{'server us':>11}{'client us':>11}"
    ]
    for kind, (rate, trips, usec, client) in medians.items():
        lines.append(
            f"{kind:<16}{rate:>14,.0f}{trips:>13.2f}{usec:>11.1f}{client:>11.1f}"
        )

    def ratio(a: str, b: str) -> str:
        rounds = zip(samples[a], samples[b], strict=True)
        paired = sorted(x[0] / y[0] for x, y in rounds)
        median = paired[len(paired) // 2]
        return f"{median:.2f}x ({paired[0]:.2f}-{paired[-1]:.2f})"

    lines += [
        "",
        f"ratios: median of {rounds} rounds (range)",
        f"hit (1 limit) / GET:                  {ratio('hit_one', 'get')}",
        f"hit (3 limits) / hit (1 limit):       {ratio('hit_three', 'hit_one')}",
        f"fixed window: redismem / limits:      {ratio('hit_fixed', 'limits_fixed')}",
        f"sliding window: redismem / limits moving: "
        f"{ratio('hit_sliding', 'limits_moving')}",
        f"pipelined {PIPELINE} hits / {PIPELINE} GETs:      "
        f"{ratio('pipeline_hit', 'pipeline_get')}",
        f"pipelined hits / single hits:         {ratio('pipeline_hit', 'hit_one')}",
        "",
        f"interleaved op by op in one process ({INTERLEAVED} of each per round;"
        " median of rounds, range):",
    ]
    for label, pair in [
        ("hit (1 limit) / GET:            ", ("hit_one", "get")),
        ("hit (3 limits) / hit (1 limit): ", ("hit_three", "hit_one")),
    ]:
        paired = sorted(
            interleaved_ratio(url, pair, INTERLEAVED) for _ in range(rounds)
        )
        lines.append(
            f"{label}       {paired[len(paired) // 2]:.2f}x "
            f"({paired[0]:.2f}-{paired[-1]:.2f})"
        )
    return lines


def main() -> None:
    """Parse arguments, start a server if needed, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Redis to use (default: a private server)")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    if args.url:
        print("\n".join(report(args.url, args.seconds, args.rounds)))
        return

    from tests.servers import RedisServer

    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-limiter-")))
    server.start()
    try:
        print(f"redis-server {server.client().info('server')['redis_version']}")
        print("\n".join(report(server.url, args.seconds, args.rounds)))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
