"""What the sync and asyncio RateLimiter share: settings and call building.

The two classes differ only in how they run the calls this base prepares.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis.exceptions

from redismem.errors import InvalidLimit
from redismem.limiter import calls
from redismem.limiter.calls import Mode
from redismem.limiter.decision import Decision, unavailable
from redismem.limiter.notation import Limit, LimitLike, parse_limits
from redismem.limiter.policies import Policy, PolicyCache, check_policy_name
from redismem.limiter.settings import Backoff, UsageRetention
from redismem.scripts import Call

logger = logging.getLogger(__name__)

#: What "Redis cannot be reached in time" looks like to redis-py.
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
)

#: The operation ``hit`` counts usage under when none is named.
DEFAULT_OPERATION = "default"

#: Limits one ``hit`` takes: a Limit, notation, or a list of them.
Limits = LimitLike | Iterable[LimitLike]

#: One request of ``hit_many``: (subject, limits) or (subject, limits, cost).
Request = tuple[str, Limits] | tuple[str, Limits, int]

#: Most prepared calls a limiter keeps (oldest dropped first).
PREPARED_CALLS = 4096


class LimiterCore:
    """Settings, the policy cache and call building, without any I/O.

    ``fail_open`` decides what a hit answers when Redis is unreachable or too
    slow: allowed (the default; see the README for why) or refused.
    """

    def __init__(
        self,
        *,
        policies: Iterable[Policy] = (),
        backoff: Backoff | None = None,
        retention: UsageRetention | None = None,
        fail_open: bool = True,
        refresh_interval: float = 0.5,
    ) -> None:
        if refresh_interval <= 0:
            raise InvalidLimit(refresh_interval, "refresh_interval must be > 0")
        self.backoff = backoff
        self.retention = retention or UsageRetention()
        self.fail_open = fail_open
        self.policies = PolicyCache(policies, refresh_interval)
        self._last_outage_log = float("-inf")
        # Apps check the same few (subject, limits) pairs over and over; a
        # Call is immutable, so each one is validated and built once.
        self._prepared: dict[tuple[Any, ...], Call[Decision]] = {}
        self._prepared_for: tuple[Any, Any] = (backoff, self.retention)

    def _check_call(
        self,
        subject: str,
        limits: Limits | tuple[Limit, ...],
        *,
        mode: Mode,
        cost: int,
        operation: str,
    ) -> Call[Decision]:
        key = _prepared_key(subject, limits, mode, cost, operation)
        if key is not None:
            if self._prepared_for != (self.backoff, self.retention):
                self._prepared.clear()
                self._prepared_for = (self.backoff, self.retention)
            call = self._prepared.get(key)
            if call is not None:
                return call
        call = self._build_call(
            subject, limits, mode=mode, cost=cost, operation=operation
        )
        if key is not None:
            if len(self._prepared) >= PREPARED_CALLS:
                del self._prepared[next(iter(self._prepared))]
            self._prepared[key] = call
        return call

    def _build_call(
        self,
        subject: str,
        limits: Limits | tuple[Limit, ...],
        *,
        mode: Mode,
        cost: int,
        operation: str,
    ) -> Call[Decision]:
        # A policy may leave an operation unlimited: its () is already parsed.
        # Anywhere else an empty list of limits is a mistake, and refused.
        parsed = limits if limits == () else parse_limits(limits)
        return calls.check(
            subject,
            parsed,
            mode=mode,
            cost=cost,
            operation=operation,
            backoff=self.backoff,
            retention=self.retention,
        )

    def _request_call(self, request: Request) -> Call[Decision]:
        if not isinstance(request, tuple) or len(request) not in (2, 3):
            raise InvalidLimit(request, "a request is (subject, limits[, cost])")
        cost = request[2] if len(request) == 3 else 1
        return self._check_call(
            request[0], request[1], mode="hit", cost=cost, operation=DEFAULT_OPERATION
        )

    def _refusal_note(self, subject: str, decision: Decision) -> Call[int] | None:
        """The top-of-refusals update a hit's Decision needs, if any."""
        if decision.allowed or decision.time_ms == 0 or not self.retention.days:
            return None
        return calls.note_refusal(subject, decision, self.retention)

    def _unavailable(self, error: BaseException) -> Decision:
        # One warning a minute at most: an outage must not flood the logs.
        now = time.monotonic()
        if now - self._last_outage_log >= 60:
            self._last_outage_log = now
            logger.warning(
                "Redis unreachable, failing %s: %s",
                "open" if self.fail_open else "closed",
                error,
            )
        return unavailable(self.fail_open)

    @staticmethod
    def _updated(
        current: Policy | None, name: str, operation: str, limits: Limits | None
    ) -> Policy:
        operations: dict[str, Any] = dict(current.operations) if current else {}
        if limits is None:
            operations.pop(operation, None)
        else:
            operations[operation] = parse_limits(limits)
        return Policy(check_policy_name(name), operations)


def _prepared_key(
    subject: object, limits: object, mode: str, cost: object, operation: object
) -> tuple[Any, ...] | None:
    """What a prepared call is found by; None when it must not be cached.

    Only exact ``str`` and ``int`` types qualify, so that values equal to them
    (``True``, ``1.0``) still reach validation and are refused there. Limits
    are one notation string or Limit, or a list or tuple of them.
    """
    if type(subject) is not str or type(cost) is not int or type(operation) is not str:
        return None
    if isinstance(limits, (list, tuple)):
        if not all(type(item) is str or type(item) is Limit for item in limits):
            return None
        limits = tuple(limits)
    elif type(limits) is not str and type(limits) is not Limit:
        return None
    return (subject, limits, mode, cost, operation)
