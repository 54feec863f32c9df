"""The limiter's operations as Call objects: what to send, how to read the reply.

Nothing here does I/O; the sync and asyncio ``RateLimiter`` run these calls,
so key names, argument encoding and reply parsing exist exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from redismem import scripts
from redismem.errors import InvalidLimit
from redismem.keys import (
    ALLOWED_SUBJECTS,
    DENIED_SUBJECTS,
    SubjectKeys,
    refused_top_key,
)
from redismem.limiter.decision import Decision, from_reply
from redismem.limiter.notation import SCRIPT_CODES, Limit
from redismem.limiter.settings import Backoff, UsageRetention
from redismem.limiter.subjects import check_cost, check_operation, check_subject
from redismem.replies import text
from redismem.scripts import Arg, Call

Mode = Literal["hit", "peek", "refund"]
Listing = Literal["allow", "deny"]

#: Most limits one check may evaluate (each adds 5 script arguments).
MAX_LIMITS = 32


def check(
    subject: str,
    limits: Sequence[Limit],
    *,
    mode: Mode,
    cost: int,
    operation: str,
    backoff: Backoff | None,
    retention: UsageRetention,
) -> Call[Decision]:
    """The call that hits, peeks at or refunds ``limits`` in one script run."""
    check_subject(subject)
    check_operation(operation)
    if operation == "*":
        raise InvalidLimit(operation, "hit a named operation, not the default *")
    check_cost(cost, minimum=0 if mode == "peek" else 1)
    if len(limits) > MAX_LIMITS:
        raise InvalidLimit(limits, f"at most {MAX_LIMITS} limits in one check")
    ids = [limit.state_id for limit in limits]
    if len(set(ids)) != len(ids):
        raise InvalidLimit(
            [str(limit) for limit in limits],
            "two limits share a state key; give one of them name=<id>",
        )

    names = SubjectKeys(subject)
    keys = [names.acl, names.ban, names.strikes, names.usage]
    args: list[Arg] = [mode, cost, operation, retention.days]
    # Backoff is read only when a limit refuses: one argument, not six.
    args.append(" ".join(map(str, backoff.script_args())) if backoff else "0")
    for limit in limits:
        keys.append(names.state(operation, limit.state_id))
        if limit.algorithm == "sliding_window":
            keys.append(names.state_totals(operation, limit.state_id))
        args += _limit_args(limit)

    chosen = tuple(limits)
    return Call(
        lambda reply: from_reply(reply, chosen),
        script=scripts.load("limit_hit"),
        keys=tuple(keys),
        args=tuple(args),
    )


def note_refusal(
    subject: str, decision: Decision, retention: UsageRetention
) -> Call[int]:
    """The call that counts a refusal in the day's top of refused subjects."""
    day = day_label(decision.time_ms)
    return Call(
        int,
        script=scripts.load("limit_top"),
        keys=(refused_top_key(day),),
        args=(subject, retention.days),
    )


def state_keys(subject: str, operation: str, limits: Sequence[Limit]) -> list[str]:
    """Every state key of these limits of one operation."""
    names = SubjectKeys(check_subject(subject))
    check_operation(operation)
    keys = []
    for limit in limits:
        keys.append(names.state(operation, limit.state_id))
        if limit.algorithm == "sliding_window":
            keys.append(names.state_totals(operation, limit.state_id))
    return keys


def delete(keys: Sequence[str]) -> Call[int]:
    """The call that deletes keys of one subject (one slot, so one command)."""
    return Call(int, command=("DEL", *keys))


def set_listing(subject: str, listing: Listing | None) -> list[Call[Any]]:
    """The calls that put a subject on a list, or take it off both.

    The subject's ``acl`` key is what the script reads, so it is written
    first; the directories span slots and are updated after, idempotently.
    """
    names = SubjectKeys(check_subject(subject))
    if listing not in ("allow", "deny", None):
        raise InvalidLimit(listing, "a list is allow or deny")
    first: Call[Any] = (
        Call(_ignore, command=("DEL", names.acl))
        if listing is None
        else Call(_ignore, command=("SET", names.acl, listing))
    )
    allowed = "SADD" if listing == "allow" else "SREM"
    denied = "SADD" if listing == "deny" else "SREM"
    return [
        first,
        Call(_ignore, command=(allowed, ALLOWED_SUBJECTS, subject)),
        Call(_ignore, command=(denied, DENIED_SUBJECTS, subject)),
    ]


def listing(subject: str) -> Call[Listing | None]:
    """The call that reads which list a subject is on, if any."""
    names = SubjectKeys(check_subject(subject))

    def parse(reply: Any) -> Listing | None:
        if reply is None:
            return None
        return "allow" if text(reply) == "allow" else "deny"

    return Call(parse, command=("GET", names.acl))


def listed(which: Listing) -> Call[list[str]]:
    """The call that lists the subjects on the allow or the deny list."""
    key = ALLOWED_SUBJECTS if which == "allow" else DENIED_SUBJECTS
    return Call(lambda reply: sorted(text(s) for s in reply), command=("SMEMBERS", key))


def redis_time() -> Call[int]:
    """The call that reads Redis time, in milliseconds."""
    return Call(
        lambda reply: int(reply[0]) * 1000 + int(reply[1]) // 1000,
        command=("TIME",),
    )


def top_refused(day: str, count: int) -> Call[list[tuple[str, int]]]:
    """The call that reads the ``count`` most refused subjects of a day."""

    def parse(reply: Any) -> list[tuple[str, int]]:
        if reply and isinstance(reply[0], (list, tuple)):
            return [(text(member), int(float(score))) for member, score in reply]
        return [
            (text(member), int(float(score)))
            for member, score in zip(reply[::2], reply[1::2], strict=True)
        ]

    return Call(
        parse,
        command=("ZREVRANGE", refused_top_key(day), 0, count - 1, "WITHSCORES"),
    )


def day_label(time_ms: int) -> str:
    """The UTC day of a Redis time, as YYYYMMDD."""
    return _utc(time_ms).strftime("%Y%m%d")


def _limit_args(limit: Limit) -> list[Arg]:
    """A limit's 5 script arguments: code, amount, period, capacity, option."""
    if limit.algorithm == "quota":
        assert limit.calendar is not None
        code = "qm" if limit.calendar == "month" else "qd"
        option = limit.utc_offset
    else:
        code = SCRIPT_CODES[limit.algorithm]
        option = 1 if limit.shaping else 0
    return [code, limit.amount, limit.period_ms, limit.capacity, option]


def _utc(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc)


def _ignore(reply: Any) -> None:
    return None
