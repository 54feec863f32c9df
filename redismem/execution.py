"""Running Call objects on a synchronous redis-py client.

Works with ``redis.Redis`` and ``redis.cluster.RedisCluster`` alike: a script
call is ``EVALSHA`` routed by its keys, and a ``NOSCRIPT`` reply loads the
script and retries once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from redismem.errors import PreconditionFailed
from redismem.held_connections import HeldConnections
from redismem.scripts import Call, Script

T = TypeVar("T")

logger = logging.getLogger(__name__)


def run(client: Any, call: Call[T], held: HeldConnections | None = None) -> T:
    """Send one call in one round trip and return its parsed result.

    A script call goes over ``held`` connections when given (see
    ``redismem.held_connections``); everything else through the client.
    """
    args = call.redis_args()
    if held is not None and call.script is not None:
        send = held.execute
    else:
        send = client.execute_command
    try:
        reply = send(*args)
    except NoScriptError:
        assert call.script is not None
        load_script(client, call.script)
        reply = send(*args)
    return call.parse(reply)


def run_pipelined(
    client: Any, calls: Sequence[Call[Any]], held: HeldConnections | None = None
) -> list[Any]:
    """Send many calls in one pipeline (not a transaction) and parse each reply.

    A refused precondition comes back as its exception instance, in place of
    a result, so one refused write does not hide the outcome of the others.
    Any other error is raised once every reply has been read. Script calls
    go over ``held`` connections when given, as in ``run``.
    """
    replies = _pipeline(client, calls, held)

    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in scripts_of(calls[i] for i in missing):
            load_script(client, script)
        retried = _pipeline(client, [calls[i] for i in missing], held)
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply

    return parse_all(calls, replies)


def load_script(client: Any, script: Script) -> None:
    """Load a script into Redis (on a cluster, into every primary)."""
    logger.info("loading script %s (%s) after NOSCRIPT", script.name, script.sha)
    client.script_load(script.source)


def scripts_of(calls: Iterable[Call[Any]]) -> set[Script]:
    """The distinct scripts among ``calls``."""
    return {call.script for call in calls if call.script is not None}


def parse_all(calls: Sequence[Call[Any]], replies: Sequence[Any]) -> list[Any]:
    """Parse pipelined replies, refused preconditions returned as values."""
    results: list[Any] = []
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, Exception):
            raise reply
        try:
            results.append(call.parse(reply))
        except PreconditionFailed as refused:
            results.append(refused)
    return results


def _pipeline(
    client: Any, calls: Sequence[Call[Any]], held: HeldConnections | None
) -> list[Any]:
    if held is not None and all(call.script is not None for call in calls):
        return held.execute_many([call.redis_args() for call in calls])
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.redis_args())
    return list(pipe.execute(raise_on_error=False))
