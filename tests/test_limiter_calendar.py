"""Calendar quotas: boundaries from Redis time, real month lengths, UTC offsets.

The calendar arithmetic of limit_hit.lua runs in Redis itself, on chosen
instants, and is compared with Python's datetime.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redismem import scripts
from redismem.limiter import Limit, RateLimiter


def _calendar_source() -> str:
    source = scripts.load("limit_hit").source
    start = source.index("-- calendar begin")
    end = source.index("-- calendar end")
    return (
        "local floor = math.floor\n"
        + source[start:end]
        + "local s, e = calendar_period(tonumber(ARGV[1]), tonumber(ARGV[2]),"
        " ARGV[3] == '1')\nreturn {s, e}\n"
    )


def _expected(at_ms: int, offset: int, monthly: bool) -> tuple[int, int]:
    zone = timezone(timedelta(seconds=offset))
    local = datetime.fromtimestamp(at_ms // 1000, tz=zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if monthly:
        start = start.replace(day=1)
        year, month = divmod(start.month, 12)
        end = start.replace(year=start.year + year, month=month + 1)
    else:
        end = start + timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _period(client: Any, at_ms: int, offset: int, monthly: bool) -> tuple[int, int]:
    reply = client.eval(_calendar_source(), 0, at_ms, offset, "1" if monthly else "0")
    return int(reply[0]), int(reply[1])


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("instant", "offset", "monthly"),
    [
        ("2024-02-29T23:59:59+00:00", 0, True),  # leap day, last second
        ("2024-03-01T00:00:00+00:00", 0, True),
        ("2023-02-15T12:00:00+00:00", 0, True),  # 28-day February
        ("2100-02-28T12:00:00+00:00", 0, True),  # not a leap year
        ("2000-02-29T12:00:00+00:00", 0, True),  # a leap year
        ("2026-12-31T23:30:00+00:00", 0, True),  # December -> January
        ("2026-12-31T23:30:00+00:00", 3600, True),  # already January in UTC+1
        ("2026-01-01T00:30:00+00:00", -3600, True),  # still December in UTC-1
        ("2026-06-30T20:00:00+00:00", 14 * 3600, False),
        ("2026-06-30T20:00:00+00:00", -12 * 3600, False),
        ("1970-01-01T00:00:00+00:00", 0, False),
    ],
)
def test_calendar_periods_match_the_gregorian_calendar(
    client: Any, instant: str, offset: int, monthly: bool
) -> None:
    at = _ms(instant)

    assert _period(client, at, offset, monthly) == _expected(at, offset, monthly)


@settings(max_examples=60, deadline=None)
@given(
    at_ms=st.integers(min_value=0, max_value=_ms("2200-01-01T00:00:00+00:00")),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    monthly=st.booleans(),
)
def test_calendar_periods_match_datetime_for_any_instant(
    redis_server: Any, at_ms: int, offset_minutes: int, monthly: bool
) -> None:
    client = redis_server.client()
    offset = offset_minutes * 60

    assert _period(client, at_ms, offset, monthly) == _expected(at_ms, offset, monthly)
    client.close()


@pytest.mark.parametrize("tz", ["+00:00", "+05:30", "-08:00", "+14:00"])
@pytest.mark.parametrize("calendar", ["day", "month"])
def test_a_quota_resets_at_the_calendar_boundary_of_its_zone(
    limiter: RateLimiter, tz: str, calendar: str
) -> None:
    limit = Limit.parse(f"quota:5/{calendar},tz={tz}")

    decision = limiter.hit("quinn", limit)

    _, end = _expected(decision.time_ms, limit.utc_offset, calendar == "month")
    assert decision.reset_after == pytest.approx((end - decision.time_ms) / 1000)
    assert decision.remaining == 4
