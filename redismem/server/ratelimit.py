"""The server's view of a rate limiter: one call per API operation.

The server asks ``limiter(subject, operation)`` before each HTTP API call and
each subscribe, and refuses the call when the :class:`~redismem.Decision`
says so. Any callable returning a Decision (or an awaitable of one) fits;
:func:`policy_limiter` binds redismem's own limiter, through a live policy
stored in Redis, so every server process shares the same limits.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redismem.limiter.decision import Decision
from redismem.limiter.http import rate_limit_headers

if TYPE_CHECKING:
    from redismem.aio.limiter import RateLimiter as SharedLimiter

#: ``limiter(subject, operation)``; operations are listed in OPERATIONS.
RateLimiter = Callable[[str, str], "Decision | Awaitable[Decision]"]

#: The operation names the server asks about; a policy maps them to limits.
OPERATIONS = ("get", "put", "delete", "list", "changes", "subscribe")

ALLOW = Decision(
    allowed=True,
    remaining=0,
    retry_after=0.0,
    reset_after=0.0,
    limit=None,
    reason="ok",
)


def unlimited(subject: str, operation: str) -> Decision:
    """The default limiter: every call is allowed."""
    return ALLOW


def policy_limiter(limiter: SharedLimiter, policy: str) -> RateLimiter:
    """Hit the live policy ``policy`` of a shared (asyncio) RateLimiter.

    The policy maps the server's operations (``get``, ``put``, ...; ``*`` for
    the rest) to limits; change it with ``redismem limits set`` while servers
    run.
    """

    async def decide(subject: str, operation: str) -> Decision:
        return await limiter.hit_policy(subject, policy, operation)

    return decide


async def decide(limiter: RateLimiter, subject: str, operation: str) -> Decision:
    """Ask ``limiter``, awaiting its answer if it is asynchronous."""
    decision = limiter(subject, operation)
    if inspect.isawaitable(decision):
        return await decision
    return decision


def headers(decision: Decision, operation: str) -> dict[str, str]:
    """The ``RateLimit-Policy``, ``RateLimit`` and ``Retry-After`` headers.

    The policy the headers name is the operation: each has limits of its own.
    """
    return rate_limit_headers(decision, name=operation)
