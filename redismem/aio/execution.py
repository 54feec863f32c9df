"""Running Call objects on an asyncio redis-py client (the twin of
``redismem.execution``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from redismem.execution import parse_all, scripts_of
from redismem.scripts import Call, Script

T = TypeVar("T")

logger = logging.getLogger(__name__)


async def run(client: Any, call: Call[T]) -> T:
    """Send one call in one round trip and return its parsed result."""
    args = call.redis_args()
    try:
        reply = await client.execute_command(*args)
    except NoScriptError:
        assert call.script is not None
        await load_script(client, call.script)
        reply = await client.execute_command(*args)
    return call.parse(reply)


async def run_pipelined(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    """Send many calls in one pipeline; see ``redismem.execution.run_pipelined``."""
    replies = await _pipeline(client, calls)

    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in scripts_of(calls[i] for i in missing):
            await load_script(client, script)
        retried = await _pipeline(client, [calls[i] for i in missing])
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply

    return parse_all(calls, replies)


async def load_script(client: Any, script: Script) -> None:
    """Load a script into Redis (on a cluster, into every primary)."""
    logger.info("loading script %s (%s) after NOSCRIPT", script.name, script.sha)
    await client.script_load(script.source)


async def _pipeline(client: Any, calls: Sequence[Call[Any]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.redis_args())
    return list(await pipe.execute(raise_on_error=False))
