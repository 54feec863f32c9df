"""Running Call objects on an asyncio redis-py client (the twin of
``redismem.execution``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from redismem.execution import parse_all
from redismem.scripts import Call

T = TypeVar("T")


async def run(client: Any, call: Call[T]) -> T:
    """Send one call in one round trip and return its parsed result."""
    args = call.redis_args()
    try:
        reply = await client.execute_command(*args)
    except NoScriptError:
        assert call.script is not None
        await client.script_load(call.script.source)
        reply = await client.execute_command(*args)
    return call.parse(reply)


async def run_pipelined(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    """Send many calls in one pipeline; see ``redismem.execution.run_pipelined``."""
    replies = await _pipeline(client, calls)

    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        scripts = {calls[i].script for i in missing}
        for script in (script for script in scripts if script is not None):
            await client.script_load(script.source)
        retried = await _pipeline(client, [calls[i] for i in missing])
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply

    return parse_all(calls, replies)


async def _pipeline(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.redis_args())
    return list(await pipe.execute(raise_on_error=False))
