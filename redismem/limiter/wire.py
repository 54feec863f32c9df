"""Sending a prepared check with the least client work.

A limiter sends the same few checks over and over, so each one is packed
into Redis protocol once and kept. On a plain ``redis.Redis`` those bytes go
straight to a pooled connection: redis-py's generic command path (argument
packing, per-command bookkeeping) costs more than the script itself takes to
run. Anything else (a cluster, a single-connection client, the embedded
mode) goes through ``redismem.execution.run``, as every other call does.
Both paths answer the same, reload a script after NOSCRIPT and raise
redis-py's errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoScriptError

from redismem.execution import run
from redismem.limiter.decision import Decision
from redismem.scripts import Call


@dataclass(slots=True)
class PreparedCheck:
    """A validated check and, once it has been sent, its packed bytes."""

    call: Call[Decision]
    packed: list[bytes] | None = None


def send(client: Any, prepared: PreparedCheck) -> Decision:
    """Run a prepared check in one round trip and return its Decision."""
    if type(client) is not redis.Redis or client.connection is not None:
        return run(client, prepared.call)

    pool = client.connection_pool
    connection: Any = _pooled_connection(pool)
    try:
        if prepared.packed is None:
            # Subjects, operations and script arguments are ASCII: the bytes
            # do not depend on the client's encoding settings.
            packed = connection.pack_command(*prepared.call.redis_args())
            prepared.packed = [b"".join(packed)]
        # The connection's own retry policy applies, as in redis-py.
        reply = connection.retry.call_with_retry(
            lambda: _round_trip(connection, prepared.packed),
            lambda error: connection.disconnect(),
        )
    except NoScriptError:
        # Redis lost its scripts (restart, SCRIPT FLUSH): run() reloads.
        lost_script = True
    else:
        lost_script = False
    finally:
        pool.release(connection)

    if lost_script:
        return run(client, prepared.call)
    return prepared.call.parse(reply)


def _pooled_connection(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:
        # redis-py before 5.3 wants a command name, which it then ignores.
        return pool.get_connection("EVALSHA")


def _round_trip(connection: Any, packed: Any) -> Any:
    connection.send_packed_command(packed)
    return connection.read_response()
