"""Change feed benchmarks, each against a plain-Redis baseline in the same run.

1. Latency from ``put`` to a subscriber, at a steady write rate, against
   ``PUBLISH`` to a raw ``SUBSCRIBE`` connection at the same rate and size.
2. Events per second one subscriber keeps up with, against a raw pub/sub
   subscriber receiving the same flood of ``PUBLISH``.
3. ``replay`` speed in events per second, against raw ``XRANGE`` paging of
   the same stream.

Writers run in their own processes; times are ``time.monotonic()``, which is
one clock for every process on Linux. Run from the repository root:
``python -m benchmarks.bench_feed``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis

from redismem import ChangeEvent, MemoryStore
from redismem.compaction import MANUAL_ONLY
from redismem.keys import NamespaceKeys
from tests.servers import RedisServer

VALUE = {"name": "Alice", "plan": "pro", "tags": ["a", "b", "c"], "visits": 42}
SPAWN = multiprocessing.get_context("spawn")


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A redis-server on a free port in a temporary directory, for one run."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="redismem-bench-")))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def paced(count: int, rate: float) -> Iterator[int]:
    """Yield 0..count-1, each at its slot of a steady ``rate`` per second."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


def put_steadily(port: int, count: int, rate: float, out: Connection) -> None:
    """Process: ``count`` puts at ``rate``/s; send (seq, sent, returned) times."""
    store = MemoryStore(redis.Redis(port=port), compaction=MANUAL_ONLY)
    times = []
    for i in paced(count, rate):
        sent = time.monotonic()
        record = store.put("latency", f"k{i % 100}", {**VALUE, "visits": i})
        returned = time.monotonic()
        times.append((i, sent, returned, record.version))
    out.send(times)


def publish_steadily(port: int, count: int, rate: float, out: Connection) -> None:
    """Process: ``count`` raw PUBLISH of a same-size JSON event at ``rate``/s."""
    client = redis.Redis(port=port)
    times = []
    for i in paced(count, rate):
        message = json.dumps({"seq": i, "key": f"k{i % 100}", "value": VALUE})
        sent = time.monotonic()
        client.publish("raw:latency", message)
        times.append((i, sent, time.monotonic(), 0))
    out.send(times)


def put_flood(port: int, namespace: str, count: int, batch: int) -> None:
    """Process: ``count`` puts as fast as pipelines of ``batch`` allow."""
    store = MemoryStore(redis.Redis(port=port))
    for start in range(0, count, batch):
        store.put_many(
            [(namespace, f"k{i % 1000}", VALUE) for i in range(start, start + batch)]
        )


def publish_flood(port: int, count: int, batch: int) -> None:
    """Process: ``count`` raw PUBLISH in pipelines of ``batch``."""
    client = redis.Redis(port=port)
    message = json.dumps({"seq": 0, "key": "k", "value": VALUE})
    for _ in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(batch):
            pipe.publish("raw:flood", message)
        pipe.execute()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def feed_latency(port: int, count: int, rate: float) -> dict[str, Any]:
    """Latency of put -> MemoryStore.subscribe."""
    store = MemoryStore(redis.Redis(port=port))
    received: dict[int, float] = {}
    with store.subscribe("latency") as subscription:
        mine, theirs = SPAWN.Pipe()
        writer = SPAWN.Process(target=put_steadily, args=(port, count, rate, theirs))
        writer.start()
        while len(received) < count:
            item = subscription.get(timeout=30)
            assert isinstance(item, ChangeEvent), item
            received[item.seq] = time.monotonic()
        times = mine.recv()
        writer.join()
    # The writer's i-th put is the namespace's seq i + 1.
    return _latencies(times, {seq - 1: at for seq, at in received.items()})


def raw_latency(port: int, count: int, rate: float) -> dict[str, Any]:
    """Latency of PUBLISH -> a raw redis-py SUBSCRIBE connection."""
    pubsub = redis.Redis(port=port).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("raw:latency")
    while pubsub.get_message(timeout=1) is None and not pubsub.subscribed:
        pass
    mine, theirs = SPAWN.Pipe()
    writer = SPAWN.Process(target=publish_steadily, args=(port, count, rate, theirs))
    writer.start()
    received: dict[int, float] = {}
    while len(received) < count:
        message = pubsub.get_message(timeout=30)
        if message is not None:
            received[json.loads(message["data"])["seq"]] = time.monotonic()
    times = mine.recv()
    writer.join()
    pubsub.close()
    return _latencies(times, received)


def _latencies(
    times: list[tuple[int, float, float, int]], received: dict[int, float]
) -> dict[str, Any]:
    from_send = [received[i] - sent for i, sent, _, _ in times]
    from_return = [received[i] - returned for i, _, returned, _ in times]
    return {
        "from_send": percentiles(from_send),
        "from_return": percentiles(from_return),
    }


def flood(port: int, count: int, writers: int, target: Any) -> float:
    """Run ``writers`` processes of ``target`` for ``count`` events in all;
    return their combined write rate (events/s)."""
    processes = [
        SPAWN.Process(target=target, args=(port, count // writers, 100))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    begin = time.monotonic()
    for process in processes:
        process.join()
    return count / (time.monotonic() - begin)


def put_flood_one(port: int, count: int, batch: int) -> None:
    """Process: ``put_flood`` into the namespace "flood"."""
    put_flood(port, "flood", count, batch)


def feed_throughput(port: int, count: int, writers: int) -> dict[str, float]:
    """Events/s one subscription takes in: written while it waits, then drained.

    Draining a backlog is the fastest a subscriber can go, so it is the write
    rate it keeps up with.
    """
    store = MemoryStore(redis.Redis(port=port))
    with store.subscribe("flood") as subscription:
        written = flood(port, count, writers, put_flood_one)
        begin, seen, resets = time.monotonic(), 0, 0
        while seen < count:
            item = subscription.get(timeout=30)
            assert item is not None, f"stalled after {seen} events"
            if isinstance(item, ChangeEvent):
                seen += 1
            else:
                resets, seen = resets + 1, item.seq
        drained = time.monotonic() - begin
    return {"events_per_s": count / drained, "written_per_s": written, "resets": resets}


def raw_throughput(port: int, count: int, writers: int) -> dict[str, float]:
    """Messages/s a raw pub/sub subscriber drains after a PUBLISH flood."""
    pubsub = redis.Redis(port=port).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("raw:flood")
    while pubsub.get_message(timeout=1) is None and not pubsub.subscribed:
        pass
    written = flood(port, count, writers, publish_flood)
    begin, seen = time.monotonic(), 0
    while seen < count:
        message = pubsub.get_message(timeout=30)
        assert message is not None, f"stalled after {seen} messages"
        json.loads(message["data"])  # the feed decodes every event too
        seen += 1
    drained = time.monotonic() - begin
    pubsub.close()
    return {"events_per_s": count / drained, "written_per_s": written, "resets": 0}


def replay_speed(port: int, count: int, rounds: int) -> tuple[float, float]:
    """Events/s of MemoryStore.replay and of raw XRANGE paging, best of rounds."""
    client = redis.Redis(port=port)
    store = MemoryStore(client, compaction=MANUAL_ONLY)
    for start in range(0, count, 500):
        store.put_many(
            [("replay", f"k{i % 5000}", VALUE) for i in range(start, start + 500)]
        )
    log = NamespaceKeys("replay").log

    def raw() -> None:
        after = "-"
        while True:
            entries = client.xrange(log, after, "+", count=1000)
            if not entries:
                return
            after = "(" + entries[-1][0].decode()

    best_replay = best_raw = float("inf")
    for _ in range(rounds):
        begin = time.perf_counter()
        store.replay("replay")
        best_replay = min(best_replay, time.perf_counter() - begin)
        begin = time.perf_counter()
        raw()
        best_raw = min(best_raw, time.perf_counter() - begin)
    return count / best_replay, count / best_raw


def main() -> None:
    """Run the three benchmarks and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000.0, help="writes/s")
    parser.add_argument("--flood-events", type=int, default=40_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--replay-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    with private_redis() as server:
        port = server.port
        # The throughput runs park a backlog in the subscriber's output buffer.
        redis.Redis(port=port).config_set("client-output-buffer-limit", "pubsub 0 0 0")
        feed = feed_latency(port, options.latency_events, options.rate)
        raw = raw_latency(port, options.latency_events, options.rate)
        print(f"latency at {options.rate:.0f} writes/s, ms (p50 / p99):")
        for label, key in (("from call", "from_send"), ("from return", "from_return")):
            f50, f99 = feed[key]
            r50, r99 = raw[key]
            # From the return, the event may arrive first: then it is < 0.
            print(
                f"  {label:12} put->subscribe {f50:6.3f} / {f99:6.3f}   "
                f"PUBLISH->SUBSCRIBE {r50:6.3f} / {r99:6.3f}   "
                f"difference p50 {f50 - r50:+6.3f} p99 {f99 - r99:+6.3f}"
            )

        ours = feed_throughput(port, options.flood_events, options.writers)
        theirs = raw_throughput(port, options.flood_events, options.writers)
        print(
            f"one subscriber draining {options.flood_events} events: feed "
            f"{ours['events_per_s']:,.0f} ev/s (resets {ours['resets']:.0f}), raw "
            f"pub/sub {theirs['events_per_s']:,.0f} msg/s, ratio "
            f"{ours['events_per_s'] / theirs['events_per_s']:.2f}; written by "
            f"{options.writers} put_many writers at {ours['written_per_s']:,.0f} "
            f"ev/s (raw PUBLISH {theirs['written_per_s']:,.0f} msg/s)"
        )

        replayed, ranged = replay_speed(port, options.replay_events, options.rounds)
        print(
            f"replay of {options.replay_events} events: {replayed:,.0f} ev/s, "
            f"raw XRANGE {ranged:,.0f} ev/s, ratio {replayed / ranged:.2f}"
        )


if __name__ == "__main__":
    main()
