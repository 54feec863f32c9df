"""HTTP: RateLimit headers from a Decision, and an ASGI middleware.

Headers follow the IETF draft "RateLimit header fields for HTTP"
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy`` names the
deciding limit's quota ``q`` and window ``w`` (seconds), ``RateLimit`` its
remaining units ``r`` and the seconds ``t`` until it is full again; a refusal
adds ``Retry-After`` in whole seconds, rounded up.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from redismem.limiter.decision import Decision
from redismem.limiter.notation import Limit, LimitLike

if TYPE_CHECKING:
    from redismem.aio.limiter import RateLimiter

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The operation an HTTP method counts as, when none is given.
METHOD_OPERATIONS = {
    "GET": "read",
    "HEAD": "read",
    "OPTIONS": "read",
    "POST": "write",
    "PUT": "write",
    "PATCH": "write",
    "DELETE": "delete",
}


def rate_limit_headers(decision: Decision, *, name: str = "default") -> dict[str, str]:
    """The ``RateLimit-Policy``, ``RateLimit`` and ``Retry-After`` headers.

    ``name`` is the policy name the headers carry. A Decision with no deciding
    limit (deny list, ban, unreachable Redis) carries no policy, only
    ``Retry-After`` when a wait is known.
    """
    headers: dict[str, str] = {}
    if decision.limit is not None:
        quota, window = decision.limit.capacity, _window_seconds(decision.limit)
        headers["RateLimit-Policy"] = f'"{name}";q={quota};w={window}'
        reset = math.ceil(decision.reset_after)
        headers["RateLimit"] = f'"{name}";r={decision.remaining};t={reset}'
    if not decision.allowed and decision.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return headers


class RateLimitMiddleware:
    """An ASGI middleware that hits a limiter for every HTTP request.

    ``subject(scope)`` names the subject (an API key, a user, a client
    address); None lets the request through unlimited. The limits are either
    ``limits`` or the live ``policy``'s limits for ``operation(scope)``
    (default: by HTTP method, ``METHOD_OPERATIONS``). A refusal answers 429
    with a JSON body; every answer carries the RateLimit headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        *,
        subject: Callable[[Scope], str | None],
        limits: LimitLike | list[LimitLike] | None = None,
        policy: str | None = None,
        operation: Callable[[Scope], str] | None = None,
    ) -> None:
        if (limits is None) == (policy is None):
            raise ValueError("give exactly one of limits= and policy=")
        self.app = app
        self.limiter = limiter
        self.subject = subject
        self.limits = limits
        self.policy = policy
        self.operation = operation or _method_operation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hit the limits, then pass the request on or answer 429."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        subject = self.subject(scope)
        if subject is None:
            await self.app(scope, receive, send)
            return

        decision = await self._decide(subject, self.operation(scope))
        headers = rate_limit_headers(decision, name=self.policy or "default")
        if not decision.allowed:
            logger.debug("429 for %s: %s", subject, decision.reason)
            await _refuse(send, decision, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _decide(self, subject: str, operation: str) -> Decision:
        if self.policy is not None:
            return await self.limiter.hit_policy(subject, self.policy, operation)
        assert self.limits is not None
        return await self.limiter.hit(subject, self.limits, operation=operation)


def _method_operation(scope: Scope) -> str:
    return METHOD_OPERATIONS.get(str(scope.get("method", "GET")).upper(), "write")


def _window_seconds(limit: Limit) -> int:
    """The draft's window: a bucket's time to refill its capacity, else the period."""
    if limit.algorithm in ("token_bucket", "leaky_bucket"):
        return max(1, math.ceil(limit.capacity * limit.period_ms / limit.amount / 1000))
    return max(1, math.ceil(limit.window))


async def _refuse(send: Send, decision: Decision, headers: dict[str, str]) -> None:
    body = json.dumps({"error": "rate limit exceeded", **decision.as_json()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
