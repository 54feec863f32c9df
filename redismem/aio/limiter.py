"""RateLimiter for asyncio: the methods of ``redismem.RateLimiter``, awaited.

Every Redis call is bounded by ``timeout`` (``asyncio.wait_for``), after which
the limiter fails open or closed as configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from redismem.aio.execution import run, run_pipelined
from redismem.connection import connect_async
from redismem.keys import SubjectKeys
from redismem.limiter import calls, policies
from redismem.limiter.calls import Listing, Mode
from redismem.limiter.core import (
    DEFAULT_OPERATION,
    UNREACHABLE,
    LimiterCore,
    Limits,
    Request,
)
from redismem.limiter.decision import Decision
from redismem.limiter.notation import parse_limits
from redismem.limiter.policies import Policy
from redismem.limiter.subjects import check_subject
from redismem.limiter.usage import UsageQuery
from redismem.replies import text
from redismem.scripts import Call

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter(LimiterCore):
    """Rate limits shared by every instance that uses the same Redis (asyncio).

    The same checks as ``redismem.RateLimiter``; ``client`` is a
    ``redis.asyncio.Redis`` or ``RedisCluster``. Every Redis call is bounded by
    ``timeout`` seconds; past it, or when Redis cannot be reached, a hit fails
    open or closed (``fail_open``).
    """

    def __init__(self, client: Any, *, timeout: float = 0.25, **settings: Any) -> None:
        super().__init__(**settings)
        self.client = client
        self.timeout = timeout

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 0.25, **settings: Any
    ) -> RateLimiter:
        """A limiter on a new client for ``url``, its calls bounded by ``timeout``."""
        client = connect_async(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return cls(client, timeout=timeout, **settings)

    async def hit(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Consume ``cost`` from every limit, or from none if any refuses."""
        return await self._run(subject, limits, "hit", cost, operation)

    async def peek(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes and counts nothing."""
        return await self._run(subject, limits, "peek", cost, operation)

    async def refund(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Give ``cost`` back to every limit (say, the request was not served)."""
        return await self._run(subject, limits, "refund", cost, operation)

    async def hit_many(self, requests: Iterable[Request]) -> list[Decision]:
        """Many independent hits in one pipeline (one round trip).

        ``requests`` holds ``(subject, limits)`` or ``(subject, limits, cost)``;
        all are validated before anything is sent.
        """
        requests = list(requests)
        batch = [self._request_call(request) for request in requests]
        try:
            decisions: list[Decision] = await self._io_many(batch)
        except UNREACHABLE as error:
            return [self._unavailable(error)] * len(batch)
        notes = [
            note
            for (subject, *_), decision in zip(requests, decisions, strict=False)
            if (note := self._refusal_note(subject, decision))
        ]
        if notes:
            try:
                await self._io_many(notes)
            except UNREACHABLE as error:
                logger.warning("cannot count %d refusals: %s", len(notes), error)
        return decisions

    async def hit_policy(
        self, subject: str, policy: str, operation: str, *, cost: int = 1
    ) -> Decision:
        """Hit the limits that the live policy ``policy`` sets for ``operation``."""
        try:
            limits = (await self.policy(policy)).limits_for(operation)
        except UNREACHABLE as error:
            return self._unavailable(error)
        return await self._run(subject, limits, "hit", cost, operation)

    async def peek_policy(
        self, subject: str, policy: str, operation: str, *, cost: int = 1
    ) -> Decision:
        """Peek at the limits that the live policy sets for ``operation``."""
        try:
            limits = (await self.policy(policy)).limits_for(operation)
        except UNREACHABLE as error:
            return self._unavailable(error)
        return await self._run(subject, limits, "peek", cost, operation)

    async def reset(
        self,
        subject: str,
        limits: Limits | None = None,
        *,
        operation: str = DEFAULT_OPERATION,
    ) -> int:
        """Forget the state of ``limits`` (default: every limit and the ban).

        Returns how many keys were deleted. Usage counters and list entries stay.
        """
        names = SubjectKeys(check_subject(subject))
        if limits is not None:
            keys = calls.state_keys(subject, operation, parse_limits(limits))
        else:
            found = self.client.scan_iter(match=names.state_pattern)
            keys = [text(key) async for key in found]
            keys += [names.ban, names.strikes]
        return await self._io(calls.delete(keys))

    async def policy(self, name: str) -> Policy:
        """The policy in effect now, re-read from Redis when its version moved."""
        cache = self.policies
        if cache.due():
            cache.checked(await self._io(policies.version()))
        if not cache.known(name):
            cache.loaded(name, await self._io(policies.load(name)))
            logger.info("loaded policy %s (version %s)", name, cache.version)
        return cache.resolve(name)

    async def save_policy(self, policy: Policy) -> None:
        """Store ``policy`` in Redis; every instance applies it within 1 s."""
        await self._io_many(policies.save(policy))
        logger.info("saved policy %s", policy.name)

    async def set_limits(
        self, policy: str, operation: str, limits: Limits | None
    ) -> Policy:
        """Set (or with None remove) one operation's limits in a stored policy."""
        current = await self._io(policies.load(policy))
        updated = self._updated(current, policy, operation, limits)
        await self.save_policy(updated)
        return updated

    async def stored_policies(self) -> list[Policy]:
        """Every policy stored in Redis."""
        found = [await self._io(policies.load(n)) for n in await self._policy_names()]
        return [policy for policy in found if policy is not None]

    async def allow(self, subject: str) -> None:
        """Put ``subject`` on the allow list: never limited, on every instance."""
        await self._io_many(calls.set_listing(subject, "allow"))

    async def deny(self, subject: str) -> None:
        """Put ``subject`` on the deny list: always refused, on every instance."""
        await self._io_many(calls.set_listing(subject, "deny"))

    async def unlist(self, subject: str) -> None:
        """Take ``subject`` off the allow and deny lists."""
        await self._io_many(calls.set_listing(subject, None))

    async def listing(self, subject: str) -> Listing | None:
        """``"allow"``, ``"deny"`` or None."""
        return await self._io(calls.listing(subject))

    async def listed(self, which: Listing) -> list[str]:
        """The subjects on the allow or the deny list."""
        return await self._io(calls.listed(which))

    async def usage(
        self, subject: str, *, minutes: int = 60, days: int = 7
    ) -> dict[str, Any]:
        """The subject's counters for the last ``minutes`` and ``days`` (UTC).

        Only buckets with counts are returned, newest first.
        """
        now_ms = await self._io(calls.redis_time())
        query = UsageQuery.ending_at(subject, now_ms, minutes=minutes, days=days)
        fetched = await self._io_many(query.calls())
        return query.report(fetched)

    async def top_refused(
        self, *, day: str | None = None, count: int = 10
    ) -> list[Any]:
        """The ``count`` subjects refused most on ``day`` (YYYYMMDD, default today)."""
        if day is None:
            day = calls.day_label(await self._io(calls.redis_time()))
        return await self._io(calls.top_refused(day, count))

    async def _run(
        self, subject: str, limits: Any, mode: Mode, cost: int, operation: str
    ) -> Decision:
        call = self._check_call(
            subject, limits, mode=mode, cost=cost, operation=operation
        )
        try:
            decision = await self._io(call)
        except UNREACHABLE as error:
            return self._unavailable(error)
        note = self._refusal_note(subject, decision) if mode == "hit" else None
        if note is not None:
            try:
                await self._io(note)
            except UNREACHABLE as error:
                logger.warning("cannot count refusal of %s: %s", subject, error)
        logger.debug("%s %s %s -> %s", mode, subject, operation, decision.reason)
        return decision

    async def _policy_names(self) -> list[str]:
        return await self._io(policies.names())

    async def _io(self, call: Call[T]) -> T:
        return await asyncio.wait_for(run(self.client, call), self.timeout)

    async def _io_many(self, batch: Sequence[Call[Any]]) -> list[Any]:
        return await asyncio.wait_for(run_pipelined(self.client, batch), self.timeout)
