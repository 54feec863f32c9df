"""What a limiter answers: a Decision, built from the script's reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redismem.limiter.notation import Limit

Reason = Literal[
    "ok", "limited", "too_costly", "denied", "banned", "allow_listed", "unavailable"
]

#: The script's reason codes, in order (see lua/limit_hit.lua).
REASONS: tuple[Reason, ...] = (
    "ok", "limited", "too_costly", "denied", "banned", "allow_listed"
)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """The answer to one ``hit``, ``peek`` or ``refund``.

    ``remaining`` is what the deciding limit can still admit (after this hit,
    when it was consumed); ``retry_after`` the seconds to wait before the same
    request can succeed (0 when allowed, None when it never can: a cost above
    the capacity, or a deny-listed subject); ``reset_after`` the seconds until
    the deciding limit is back to full; ``delay`` the seconds a shaping leaky
    bucket asks the caller to wait before proceeding. ``limit`` is the limit
    that decided (None for a list entry, a ban or an unreachable Redis).
    ``time_ms`` is the Redis time of the decision (0 if Redis was not reached).
    """

    allowed: bool
    remaining: int
    retry_after: float | None
    reset_after: float
    limit: Limit | None
    reason: Reason
    delay: float = 0.0
    time_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the limit in its notation."""
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "reset_after": self.reset_after,
            "delay": self.delay,
            "limit": None if self.limit is None else str(self.limit),
            "time_ms": self.time_ms,
        }


def from_reply(reply: Sequence[Any], limits: Sequence[Limit]) -> Decision:
    """Build a Decision from ``{allowed, reason, limit, remaining, retry_ms,
    reset_ms, delay_ms, now_ms}``."""
    allowed, reason, index, remaining, retry_ms, reset_ms, delay_ms, now_ms = reply
    retry_ms, index = int(retry_ms), int(index)
    # Runs on every hit: a frozen dataclass's __init__ sets each field through
    # object.__setattr__, and filling __dict__ at once costs half as much.
    decision = object.__new__(Decision)
    decision.__dict__.update(
        allowed=int(allowed) == 1,
        remaining=int(remaining),
        retry_after=None if retry_ms < 0 else retry_ms / 1000,
        reset_after=int(reset_ms) / 1000,
        limit=limits[index - 1] if index > 0 else None,
        reason=REASONS[int(reason)],
        delay=int(delay_ms) / 1000,
        time_ms=int(now_ms),
    )
    return decision


def unavailable(fail_open: bool) -> Decision:
    """The Decision when Redis cannot be reached in time."""
    return Decision(
        allowed=fail_open,
        remaining=0,
        retry_after=0.0 if fail_open else 1.0,
        reset_after=0.0,
        limit=None,
        reason="unavailable",
    )
