"""Usage statistics: reading the counters that every ``hit`` writes.

limit_hit.lua counts a hit with one HINCRBY in the subject's hash of the UTC
day, in the field ``<op>:<hhmm>:<outcome>``: ``a`` or ``r`` (allowed or
refused requests in that minute), ``ax`` or ``rx`` (their cost beyond one unit
each). Minute and day figures are both sums of those fields, so a query reads
one hash per day it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from redismem.keys import SubjectKeys
from redismem.limiter.subjects import check_subject
from redismem.replies import text
from redismem.scripts import Call

#: Field outcomes: requests, and cost beyond one unit per request.
_REQUESTS = {"a": "allowed", "r": "refused"}
_EXTRA_COST = {"ax": "allowed_cost", "rx": "refused_cost"}

#: One day's counters: (hhmm, operation) -> {"allowed", "refused", ...}.
DayCounts = dict[tuple[str, str], dict[str, int]]


@dataclass(frozen=True)
class UsageQuery:
    """The last ``minutes`` minutes and ``days`` days of one subject (UTC).

    ``minutes`` holds YYYYMMDDhhmm labels and ``days`` YYYYMMDD labels,
    newest first.
    """

    subject: str
    minutes: tuple[str, ...]
    days: tuple[str, ...]

    @classmethod
    def ending_at(
        cls, subject: str, now_ms: int, *, minutes: int, days: int
    ) -> UsageQuery:
        """The query of the periods that end at Redis time ``now_ms``."""
        now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
        return cls(
            check_subject(subject),
            tuple(
                (now - timedelta(minutes=back)).strftime("%Y%m%d%H%M")
                for back in range(minutes)
            ),
            tuple(
                (now - timedelta(days=back)).strftime("%Y%m%d") for back in range(days)
            ),
        )

    @property
    def hashes(self) -> list[str]:
        """The days whose hash the query reads: its days, and its minutes' days."""
        wanted = {*self.days, *(minute[:8] for minute in self.minutes)}
        return sorted(wanted, reverse=True)

    def calls(self) -> list[Call[DayCounts]]:
        """The calls that read those hashes, in the order of ``hashes``."""
        names = SubjectKeys(self.subject)
        return [day_counts(names.day_usage(day)) for day in self.hashes]

    def report(self, fetched: Sequence[DayCounts]) -> dict[str, Any]:
        """``{"subject", "minutes": [...], "days": [...]}`` from the fetched hashes.

        Periods without counts are left out; every entry maps operations to
        ``{"allowed", "refused", "allowed_cost", "refused_cost"}``.
        """
        by_day = dict(zip(self.hashes, fetched, strict=True))
        minutes = [
            {"minute": minute, "operations": operations}
            for minute in self.minutes
            if (operations := _operations(by_day[minute[:8]], minute[8:]))
        ]
        days = [
            {"day": day, "operations": operations}
            for day in self.days
            if (operations := _operations(by_day[day], None))
        ]
        return {"subject": self.subject, "minutes": minutes, "days": days}


def day_counts(key: str) -> Call[DayCounts]:
    """The call that reads one day's usage hash, grouped by minute and operation."""

    def parse(reply: Any) -> DayCounts:
        pairs = reply.items() if isinstance(reply, dict) else _pairs(reply)
        counts: DayCounts = {}
        for field, value in pairs:
            operation, hhmm, outcome = text(field).split(":")
            counters = counts.setdefault(
                (hhmm, operation),
                dict.fromkeys([*_REQUESTS.values(), *_EXTRA_COST.values()], 0),
            )
            if outcome in _REQUESTS:
                # A request's cost is one unit plus its extra.
                counters[_REQUESTS[outcome]] += int(value)
                counters[f"{_REQUESTS[outcome]}_cost"] += int(value)
            else:
                counters[_EXTRA_COST[outcome]] += int(value)
        return counts

    return Call(parse, command=("HGETALL", key))


def _operations(counts: DayCounts, hhmm: str | None) -> dict[str, dict[str, int]]:
    """Counters per operation of one minute (``hhmm``), or of the whole day."""
    operations: dict[str, dict[str, int]] = {}
    for (minute, operation), counters in counts.items():
        if hhmm is None or minute == hhmm:
            total = operations.setdefault(operation, dict.fromkeys(counters, 0))
            for name, value in counters.items():
                total[name] += value
    return operations


def _pairs(flat: Any) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))
