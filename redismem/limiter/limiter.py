"""RateLimiter: exact, shared rate limits over a synchronous redis-py client."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from redismem import held_connections
from redismem.connection import connect
from redismem.execution import run, run_pipelined
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

logger = logging.getLogger(__name__)


class RateLimiter(LimiterCore):
    """Rate limits shared by every instance that uses the same Redis.

    Each ``hit`` is one Lua script call on Redis time that checks the
    subject's allow/deny entry and ban, then all the given limits, and
    consumes from all of them or from none. ``client`` is a ``redis.Redis``
    or ``RedisCluster``; give it a ``socket_timeout`` (``from_url`` does) so
    that an unreachable Redis fails open or closed in bounded time.
    """

    def __init__(self, client: Any, **settings: Any) -> None:
        super().__init__(**settings)
        self.client = client
        # Checks go over connections the limiter keeps, as a store's script
        # calls do (a plain redis.Redis only; see held_connections).
        self._held = held_connections.for_client(client)

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 0.25, **settings: Any
    ) -> RateLimiter:
        """A limiter on a new client whose every command times out after ``timeout``."""
        client = connect(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, **settings)

    def hit(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Consume ``cost`` from every limit, or from none if any refuses."""
        return self._run(subject, limits, "hit", cost, operation)

    def peek(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes and counts nothing."""
        return self._run(subject, limits, "peek", cost, operation)

    def refund(
        self,
        subject: str,
        limits: Limits,
        *,
        cost: int = 1,
        operation: str = DEFAULT_OPERATION,
    ) -> Decision:
        """Give ``cost`` back to every limit (say, the request was not served)."""
        return self._run(subject, limits, "refund", cost, operation)

    def hit_many(self, requests: Iterable[Request]) -> list[Decision]:
        """Many independent hits in one pipeline (one round trip).

        ``requests`` holds ``(subject, limits)`` or ``(subject, limits, cost)``;
        all are validated before anything is sent.
        """
        requests = list(requests)
        batch = [self._request_call(request) for request in requests]
        try:
            decisions: list[Decision] = run_pipelined(self.client, batch, self._held)
        except UNREACHABLE as error:
            return [self._unavailable(error)] * len(batch)
        notes = [
            note
            for (subject, *_), decision in zip(requests, decisions, strict=False)
            if (note := self._refusal_note(subject, decision))
        ]
        if notes:
            try:
                run_pipelined(self.client, notes)
            except UNREACHABLE as error:
                logger.warning("cannot count %d refusals: %s", len(notes), error)
        return decisions

    def hit_policy(
        self, subject: str, policy: str, operation: str, *, cost: int = 1
    ) -> Decision:
        """Hit the limits that the live policy ``policy`` sets for ``operation``."""
        try:
            limits = self.policy(policy).limits_for(operation)
        except UNREACHABLE as error:
            return self._unavailable(error)
        return self._run(subject, limits, "hit", cost, operation)

    def peek_policy(
        self, subject: str, policy: str, operation: str, *, cost: int = 1
    ) -> Decision:
        """Peek at the limits that the live policy sets for ``operation``."""
        try:
            limits = self.policy(policy).limits_for(operation)
        except UNREACHABLE as error:
            return self._unavailable(error)
        return self._run(subject, limits, "peek", cost, operation)

    def reset(
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
            keys = [text(key) for key in self.client.scan_iter(names.state_pattern)]
            keys += [names.ban, names.strikes]
        return run(self.client, calls.delete(keys))

    def policy(self, name: str) -> Policy:
        """The policy in effect now, re-read from Redis when its version moved."""
        cache = self.policies
        if cache.due():
            cache.checked(run(self.client, policies.version()))
        if not cache.known(name):
            cache.loaded(name, run(self.client, policies.load(name)))
            logger.info("loaded policy %s (version %s)", name, cache.version)
        return cache.resolve(name)

    def save_policy(self, policy: Policy) -> None:
        """Store ``policy`` in Redis; every instance applies it within 1 s."""
        run_pipelined(self.client, policies.save(policy))
        logger.info("saved policy %s", policy.name)

    def set_limits(self, policy: str, operation: str, limits: Limits | None) -> Policy:
        """Set (or with None remove) one operation's limits in a stored policy."""
        current = run(self.client, policies.load(policy))
        updated = self._updated(current, policy, operation, limits)
        self.save_policy(updated)
        return updated

    def stored_policies(self) -> list[Policy]:
        """Every policy stored in Redis."""
        found = [run(self.client, policies.load(n)) for n in self._policy_names()]
        return [policy for policy in found if policy is not None]

    def allow(self, subject: str) -> None:
        """Put ``subject`` on the allow list: never limited, on every instance."""
        run_pipelined(self.client, calls.set_listing(subject, "allow"))

    def deny(self, subject: str) -> None:
        """Put ``subject`` on the deny list: always refused, on every instance."""
        run_pipelined(self.client, calls.set_listing(subject, "deny"))

    def unlist(self, subject: str) -> None:
        """Take ``subject`` off the allow and deny lists."""
        run_pipelined(self.client, calls.set_listing(subject, None))

    def listing(self, subject: str) -> Listing | None:
        """``"allow"``, ``"deny"`` or None."""
        return run(self.client, calls.listing(subject))

    def listed(self, which: Listing) -> list[str]:
        """The subjects on the allow or the deny list."""
        return run(self.client, calls.listed(which))

    def usage(
        self, subject: str, *, minutes: int = 60, days: int = 7
    ) -> dict[str, Any]:
        """The subject's counters for the last ``minutes`` and ``days`` (UTC).

        Only buckets with counts are returned, newest first.
        """
        now_ms = run(self.client, calls.redis_time())
        query = UsageQuery.ending_at(subject, now_ms, minutes=minutes, days=days)
        fetched = run_pipelined(self.client, query.calls())
        return query.report(fetched)

    def top_refused(self, *, day: str | None = None, count: int = 10) -> list[Any]:
        """The ``count`` subjects refused most on ``day`` (YYYYMMDD, default today)."""
        if day is None:
            day = calls.day_label(run(self.client, calls.redis_time()))
        return run(self.client, calls.top_refused(day, count))

    def _run(
        self, subject: str, limits: Any, mode: Mode, cost: int, operation: str
    ) -> Decision:
        call = self._check_call(
            subject, limits, mode=mode, cost=cost, operation=operation
        )
        try:
            decision = run(self.client, call, self._held)
        except UNREACHABLE as error:
            return self._unavailable(error)
        note = self._refusal_note(subject, decision) if mode == "hit" else None
        if note is not None:
            try:
                run(self.client, note)
            except UNREACHABLE as error:
                logger.warning("cannot count refusal of %s: %s", subject, error)
        logger.debug("%s %s %s -> %s", mode, subject, operation, decision.reason)
        return decision

    def _policy_names(self) -> list[str]:
        return run(self.client, policies.names())
