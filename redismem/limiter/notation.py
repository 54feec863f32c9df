"""Limits and their notation: ``token_bucket:10/s,burst=50`` and friends.

::

    <algorithm>:<amount>/<period>[,<option>=<value>...]

    fixed_window:1000/day          at most 1000 per aligned (UTC) day
    sliding_window:100/15min       at most 100 in any 15 minutes
    token_bucket:10/s,burst=50     10 tokens a second, at most 50 saved up
    leaky_bucket:5/s,burst=10,mode=shape
    quota:100000/month,tz=+02:00   calendar month in UTC+2

A period is an optional whole number and a unit (ms, s, min, h, day; the long
names and plurals work too). Quotas take ``day`` or ``month`` and an optional
fixed UTC offset ``tz=+HH:MM``. Every limit takes ``name=<id>``, which keys its
state in Redis (by default the algorithm and the period do, so changing the
amount or the burst keeps the state and clamps it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

from redismem.errors import InvalidLimit

Algorithm = Literal[
    "fixed_window", "sliding_window", "token_bucket", "leaky_bucket", "quota"
]
Calendar = Literal["day", "month"]

ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

#: The short code each algorithm has in script arguments and state keys.
SCRIPT_CODES = {
    "fixed_window": "fw",
    "sliding_window": "sw",
    "token_bucket": "tb",
    "leaky_bucket": "lb",
}

FORMS = (
    "accepted forms: fixed_window:<n>/<period>, sliding_window:<n>/<period>, "
    "token_bucket:<n>/<period>[,burst=<n>], "
    "leaky_bucket:<n>/<period>[,burst=<n>][,mode=police|shape], "
    "quota:<n>/day|month[,tz=+HH:MM]; <period> is [<n>]ms|s|min|h|day; "
    "any limit may add ,name=<id>"
)

_UNITS_MS = {
    "ms": 1,
    "s": 1000, "sec": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
}  # fmt: skip

#: Canonical units, largest first, for writing a period back out.
_CANONICAL_UNITS = (("day", 86_400_000), ("h", 3_600_000), ("min", 60_000),
                    ("s", 1000), ("ms", 1))  # fmt: skip

_LIMIT_RE = re.compile(
    r"\s*([a-z_]+)\s*:\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*(,.*)?", re.IGNORECASE
)
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_TZ_RE = re.compile(r"([+-])(\d{2}):?(\d{2})")

MAX_AMOUNT = 10**12
MAX_PERIOD_MS = 366 * 86_400_000
#: Fixed UTC offsets range from UTC-12:00 to UTC+14:00.
MIN_OFFSET, MAX_OFFSET = -12 * 3600, 14 * 3600


@dataclass(frozen=True)
class Limit:
    """One rate limit: an algorithm, an amount per period and its options.

    ``period_ms`` is the window (fixed, sliding) or the time in which
    ``amount`` units refill or drain (token, leaky bucket). A quota has a
    ``calendar`` period instead and a fixed ``utc_offset`` in seconds. ``burst``
    is a bucket's capacity (default: ``amount``); ``shaping`` makes a leaky
    bucket admit into its queue and report a delay instead of policing.
    """

    algorithm: Algorithm
    amount: int
    period_ms: int = 1000
    burst: int | None = None
    shaping: bool = False
    calendar: Calendar | None = None
    utc_offset: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read one limit from its notation; raise InvalidLimit with the forms."""
        return parse_limit(text)

    @property
    def capacity(self) -> int:
        """The most this limit admits at once: the amount, or a bucket's burst."""
        if self.algorithm in ("token_bucket", "leaky_bucket"):
            return self.burst if self.burst is not None else self.amount
        return self.amount

    @property
    def window(self) -> float:
        """The period in seconds (a quota's nominal day or 31-day month)."""
        if self.calendar == "month":
            return 31 * 86400.0
        return self.period_ms / 1000

    @property
    def state_id(self) -> str:
        """What names this limit's state key: its name, or algorithm and period.

        Amount and burst are left out on purpose, so a changed amount or burst
        keeps the state, which the script then clamps to the new capacity.
        """
        if self.name is not None:
            return self.name
        if self.algorithm == "quota":
            assert self.calendar is not None
            return f"q{self.calendar[0]}"
        return f"{SCRIPT_CODES[self.algorithm]}:{self.period_ms}"

    def __str__(self) -> str:
        """The canonical notation, which ``Limit.parse`` reads back."""
        if self.calendar is not None:
            text = f"quota:{self.amount}/{self.calendar}"
        else:
            text = f"{self.algorithm}:{self.amount}/{format_period(self.period_ms)}"
        if self.burst is not None:
            text += f",burst={self.burst}"
        if self.shaping:
            text += ",mode=shape"
        if self.utc_offset:
            text += f",tz={format_offset(self.utc_offset)}"
        if self.name is not None:
            text += f",name={self.name}"
        return text


LimitLike = Limit | str


def parse_limit(text: str) -> Limit:
    """Read one limit from its notation; raise InvalidLimit showing the forms."""
    if isinstance(text, Limit):
        return text
    if not isinstance(text, str):
        raise InvalidLimit(text, f"must be a Limit or a string; {FORMS}")
    return _parse_text(text)


# Limits are immutable, and apps name the same few limits on every request.
@lru_cache(maxsize=1024)
def _parse_text(text: str) -> Limit:
    match = _LIMIT_RE.fullmatch(text)
    if match is None:
        raise InvalidLimit(text, FORMS)
    algorithm, amount, multiple, unit, rest = match.groups()
    algorithm, unit = algorithm.lower(), unit.lower()
    if algorithm not in ALGORITHMS:
        raise InvalidLimit(text, f"unknown algorithm {algorithm!r}; {FORMS}")

    options = _options(text, rest or "")
    fields: dict[str, object] = {"algorithm": algorithm, "amount": int(amount)}
    if algorithm == "quota":
        if multiple or unit not in ("day", "month"):
            raise InvalidLimit(text, f"a quota's period is day or month; {FORMS}")
        fields["calendar"] = unit
        fields["period_ms"] = 86_400_000
    else:
        if unit not in _UNITS_MS:
            raise InvalidLimit(text, f"unknown unit {unit!r}; {FORMS}")
        fields["period_ms"] = int(multiple or 1) * _UNITS_MS[unit]

    for option, value in options.items():
        if option == "burst" and value.isdigit():
            fields["burst"] = int(value)
        elif option == "mode" and value in ("police", "shape"):
            fields["shaping"] = value == "shape"
        elif option == "tz":
            fields["utc_offset"] = parse_offset(text, value)
        elif option == "name":
            fields["name"] = value
        else:
            raise InvalidLimit(text, f"bad option {option}={value}; {FORMS}")
    try:
        return Limit(**fields)  # type: ignore[arg-type]
    except InvalidLimit as exc:
        raise InvalidLimit(text, f"{exc.reason}; {FORMS}") from None


def parse_limits(limits: LimitLike | Iterable[LimitLike]) -> tuple[Limit, ...]:
    """One limit, a notation string (``;`` separates several) or a list of them."""
    if isinstance(limits, Limit):
        return (limits,)
    if isinstance(limits, str):
        parts = [part for part in limits.split(";") if part.strip()]
        if not parts:
            raise InvalidLimit(limits, f"no limit given; {FORMS}")
        return tuple(parse_limit(part) for part in parts)
    parsed: list[Limit] = []
    for item in limits:
        parsed.extend(parse_limits(item))
    if not parsed:
        raise InvalidLimit(limits, f"no limit given; {FORMS}")
    return tuple(parsed)


def format_limits(limits: Sequence[Limit]) -> str:
    """Several limits in one string, as policies store them."""
    return "; ".join(str(limit) for limit in limits)


def format_period(period_ms: int) -> str:
    """``1000`` -> ``s``, ``900000`` -> ``15min``: the largest unit that divides."""
    for unit, size in _CANONICAL_UNITS:
        if period_ms % size == 0:
            count = period_ms // size
            return unit if count == 1 else f"{count}{unit}"
    raise AssertionError("every whole number of ms has a unit")


def parse_offset(text: str, value: str) -> int:
    """``+05:30`` -> 19800 seconds east of UTC."""
    match = _TZ_RE.fullmatch(value)
    if match is None:
        raise InvalidLimit(text, f"tz must look like +HH:MM or -HH:MM; {FORMS}")
    sign, hours, minutes = match.groups()
    offset = int(hours) * 3600 + int(minutes) * 60
    return -offset if sign == "-" else offset


def format_offset(offset: int) -> str:
    """19800 -> ``+05:30``."""
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _options(text: str, rest: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in rest.split(",")[1:]:
        option, equals, value = item.strip().partition("=")
        if not equals or not value or option in options:
            raise InvalidLimit(text, f"bad option {item.strip()!r}; {FORMS}")
        options[option] = value.strip()
    return options


def _check(limit: Limit) -> None:
    """Refuse a Limit whose parameters no script could honour."""
    shown = f"{limit.algorithm}:{limit.amount}"
    if limit.algorithm not in ALGORITHMS:
        raise InvalidLimit(shown, f"unknown algorithm; {FORMS}")
    if isinstance(limit.amount, bool) or not isinstance(limit.amount, int):
        raise InvalidLimit(shown, "the amount must be an integer")
    if not 1 <= limit.amount <= MAX_AMOUNT:
        raise InvalidLimit(shown, f"the amount must be between 1 and {MAX_AMOUNT}")
    if not isinstance(limit.period_ms, int) or not (
        1 <= limit.period_ms <= MAX_PERIOD_MS
    ):
        raise InvalidLimit(shown, "the period must be 1 ms to 366 days, in whole ms")
    if limit.burst is not None:
        if limit.algorithm not in ("token_bucket", "leaky_bucket"):
            raise InvalidLimit(shown, "only token and leaky buckets take a burst")
        if not 1 <= limit.burst <= MAX_AMOUNT:
            raise InvalidLimit(shown, f"burst must be between 1 and {MAX_AMOUNT}")
    if limit.shaping and limit.algorithm != "leaky_bucket":
        raise InvalidLimit(shown, "only a leaky bucket has mode=shape")
    if (limit.algorithm == "quota") != (limit.calendar is not None):
        raise InvalidLimit(shown, "a quota, and only a quota, has a calendar period")
    if limit.calendar not in (None, "day", "month"):
        raise InvalidLimit(shown, "a quota's period is day or month")
    if limit.utc_offset and limit.algorithm != "quota":
        raise InvalidLimit(shown, "only a quota takes tz=")
    if not MIN_OFFSET <= limit.utc_offset <= MAX_OFFSET:
        raise InvalidLimit(shown, "tz must be between -12:00 and +14:00")
    if limit.name is not None and not _NAME_RE.fullmatch(limit.name):
        raise InvalidLimit(shown, "name= takes 1-64 of A-Z a-z 0-9 _ . -")
