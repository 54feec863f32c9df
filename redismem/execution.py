"""Running Call objects on a synchronous redis-py client.

Works with ``redis.Redis`` and ``redis.cluster.RedisCluster`` alike: a script
call is ``EVALSHA`` routed by its keys, and a ``NOSCRIPT`` reply loads the
script and retries once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from redismem.errors import PreconditionFailed
from redismem.scripts import Call

T = TypeVar("T")


def run(client: Any, call: Call[T]) -> T:
    """Send one call in one round trip and return its parsed result."""
    args = call.redis_args()
    try:
        reply = client.execute_command(*args)
    except NoScriptError:
        assert call.script is not None
        client.script_load(call.script.source)
        reply = client.execute_command(*args)
    return call.parse(reply)


def run_pipelined(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    """Send many calls in one pipeline (not a transaction) and parse each reply.

    A refused precondition comes back as its exception instance, in place of
    a result, so one refused write does not hide the outcome of the others.
    Any other error is raised once every reply has been read.
    """
    replies = _pipeline(client, calls)

    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        scripts = {calls[i].script for i in missing}
        for script in (script for script in scripts if script is not None):
            client.script_load(script.source)
        retried = _pipeline(client, [calls[i] for i in missing])
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply

    return parse_all(calls, replies)


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


def _pipeline(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.redis_args())
    return list(pipe.execute(raise_on_error=False))
