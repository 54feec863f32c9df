"""The server's view of a rate limiter: one call per API operation.

The server asks ``limiter(subject, operation)`` before each HTTP API call and
each WebSocket command, and refuses the call when the decision says so. Any
callable returning a :class:`RateDecision` (or an awaitable of one) fits, so a
shared limiter in Redis plugs in without the server knowing its algorithm.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    """Whether a call may proceed, with what the RateLimit headers report.

    ``retry_after`` and ``reset_after`` are in seconds; ``limit`` and
    ``remaining`` may be None when the limiter has no such notion.
    """

    allowed: bool
    limit: int | None = None
    remaining: int | None = None
    retry_after: float = 0.0
    reset_after: float = 0.0


#: ``limiter(subject, operation)``; operations are listed in OPERATIONS.
RateLimiter = Callable[[str, str], "RateDecision | Awaitable[RateDecision]"]

#: The operation names the server asks about.
OPERATIONS = ("get", "put", "delete", "list", "changes", "subscribe")

ALLOW = RateDecision(allowed=True)


def unlimited(subject: str, operation: str) -> RateDecision:
    """The default limiter: every call is allowed."""
    return ALLOW


async def decide(limiter: RateLimiter, subject: str, operation: str) -> RateDecision:
    """Ask ``limiter``, awaiting its answer if it is asynchronous."""
    decision = limiter(subject, operation)
    if inspect.isawaitable(decision):
        return await decision
    return decision


def headers(decision: RateDecision) -> dict[str, str]:
    """The RateLimit headers (IETF draft names) for an HTTP answer."""
    values: dict[str, str] = {}
    if decision.limit is not None:
        values["RateLimit-Limit"] = str(decision.limit)
    if decision.remaining is not None:
        values["RateLimit-Remaining"] = str(decision.remaining)
    if decision.limit is not None or decision.reset_after:
        values["RateLimit-Reset"] = str(max(0, round(decision.reset_after)))
    if not decision.allowed:
        values["Retry-After"] = str(max(1, round(decision.retry_after + 0.499)))
    return values
