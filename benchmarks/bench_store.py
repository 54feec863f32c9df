"""put and put_many against plain HSET of the same JSON, same client, same run.

Target (issue 2): one put is one round trip, so at least 0.8x the HSET rate.
Each pair is timed side by side, alternating operation by operation, so both
meet the same moments of a shared machine; a row is the round with the median
ratio, followed by the range of ratios over the rounds.
"""

from __future__ import annotations

import argparse
import json

import redis

from benchmarks.common import interleaved_rates, median_round, private_redis, report
from redismem import MemoryStore, held_connections, operations

VALUE = {"name": "Alice", "plan": "pro", "tags": ["a", "b", "c"], "visits": 42}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000, help="single ops per round")
    parser.add_argument("--batch", type=int, default=100, help="writes per pipeline")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    with private_redis() as server:
        client = redis.Redis(port=server.port)
        store = MemoryStore(client)
        encoded = json.dumps(VALUE, separators=(",", ":"))
        keys = [f"user{i}" for i in range(options.ops)]

        def hset(i: int) -> None:
            client.hset("plain:users", keys[i], encoded)

        def put(i: int) -> None:
            store.put("users", keys[i], VALUE)

        # The same script call with no client work around it (arguments
        # built beforehand, sent on a connection the store keeps): what Redis
        # itself spends on a write, its log entry and its publication.
        raw_args = operations.write(
            "raw", "k", VALUE, mode="put", expect_version=None,
            max_value_bytes=store.max_value_bytes,
        ).redis_args()  # fmt: skip
        held = held_connections.for_client(client)
        assert held is not None

        def raw_put(_: int) -> None:
            held.execute(*raw_args)

        def pipelined_hsets(_: int) -> None:
            pipe = client.pipeline(transaction=False)
            for key in keys[: options.batch]:
                pipe.hset("plain:users", key, encoded)
            pipe.execute()

        def put_many(_: int) -> None:
            store.put_many([("users", key, VALUE) for key in keys[: options.batch]])

        store.put("users", "warm-up", VALUE)  # loads the script
        batches = max(1, options.ops // options.batch)
        rows = []
        for name, measured, baseline, scale in [
            ("put (1 script call)", put, hset, 1),
            ("EVALSHA put.lua alone, prebuilt", raw_put, hset, 1),
            (f"put_many ({options.batch} per pipeline)", put_many, pipelined_hsets,
             options.batch),
        ]:  # fmt: skip
            count = options.ops if scale == 1 else batches
            rounds = [
                interleaved_rates(measured, baseline, count)
                for _ in range(options.rounds)
            ]
            ours, theirs, low, high = median_round(rounds)
            rows.append(
                (f"{name} [{low:.2f}-{high:.2f}]", ours * scale, theirs * scale)
            )

        report(
            "MemoryStore writes vs HSET of the same JSON (writes/s; the round"
            " with the median ratio, [lowest-highest ratio] over rounds)",
            rows,
        )


if __name__ == "__main__":
    main()
