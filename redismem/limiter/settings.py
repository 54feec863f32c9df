"""A limiter's settings: escalating backoff and usage retention."""

from __future__ import annotations

from dataclasses import dataclass

from redismem.errors import InvalidLimit


@dataclass(frozen=True)
class Backoff:
    """Escalating bans for subjects that keep hitting their limits.

    ``violations`` refusals within ``window`` seconds earn a ban of
    ``base * factor ** strikes`` seconds, at most ``max_ban``; ``strikes``
    counts earlier bans and drops by one per ``decay`` quiet seconds.
    """

    violations: int = 10
    window: float = 60.0
    base: float = 1.0
    factor: float = 2.0
    max_ban: float = 3600.0
    decay: float = 600.0

    def __post_init__(self) -> None:
        if self.violations < 1:
            raise InvalidLimit(self, "backoff needs at least one violation")
        if min(self.window, self.base, self.max_ban) <= 0 or self.decay < 0:
            raise InvalidLimit(self, "backoff times must be positive")
        if self.factor < 1:
            raise InvalidLimit(self, "backoff factor must be at least 1")

    def script_args(self) -> tuple[int | str, ...]:
        """The six numbers of limit_hit.lua's ARGV[5], in order."""
        return (
            self.violations,
            _ms(self.window),
            _ms(self.base),
            repr(float(self.factor)),
            _ms(self.max_ban),
            _ms(self.decay),
        )


@dataclass(frozen=True)
class UsageRetention:
    """How long usage counters are kept, in seconds after their UTC day ends.

    A subject's counters live in one hash per UTC day whose fields carry the
    minute, so minute counters are kept exactly as long as day counters.
    ``days=0`` counts no usage at all.
    """

    days: int = 35 * 86400

    def __post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int):
            raise InvalidLimit(self, "retention is a whole number of seconds")
        if self.days < 0:
            raise InvalidLimit(self, "retention must be >= 0 (0: count no usage)")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
