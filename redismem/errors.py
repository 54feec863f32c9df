"""Every error redismem raises, rooted in one base class.

::

    RedisMemError
    ├── ValidationError (also a ValueError)   bad input; nothing was written
    │   ├── InvalidNamespace
    │   ├── InvalidKey
    │   ├── InvalidValue
    │   ├── InvalidToken
    │   ├── InvalidSubject                    bad rate-limit subject or operation
    │   └── InvalidLimit                      bad limit notation or parameters
    ├── PreconditionFailed                    a write's condition did not hold
    │   ├── VersionConflict                   expect_version did not match
    │   ├── RecordExists                      create() on an existing key
    │   └── RecordNotFound                    update() on a missing key
    ├── StaleToken                            a cursor from another log epoch,
    │   │                                     or behind compacted history
    │   └── HistoryCompacted                  replay before the compaction point
    ├── ReplayInterrupted                     compaction kept changing the log
    ├── UnknownPolicy (also a LookupError)    no such rate-limit policy
    ├── RateLimitExceeded                     a limiter refused; has the Decision
    ├── server.auth.AuthError                 credentials refused (.code, .status)
    └── server.protocol.ProtocolError         a client message refused (.code)

A refused write changes nothing in Redis: no record, no change event.
"""

from __future__ import annotations

from typing import Any


class RedisMemError(Exception):
    """Base class of every error redismem raises."""


class ValidationError(RedisMemError, ValueError):
    """Input was refused before anything reached Redis."""


class InvalidNamespace(ValidationError):
    """A namespace is empty, too long or uses characters outside the allowed set."""

    def __init__(self, namespace: object, reason: str) -> None:
        super().__init__(f"invalid namespace {namespace!r}: {reason}")
        self.namespace = namespace
        self.reason = reason


class InvalidKey(ValidationError):
    """A record key is empty, too long or uses characters outside the allowed set."""

    def __init__(self, key: object, reason: str) -> None:
        super().__init__(f"invalid key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class InvalidValue(ValidationError):
    """A value is not JSON-serialisable or exceeds the size bound."""

    def __init__(self, namespace: str, key: str, reason: str) -> None:
        super().__init__(f"invalid value for {namespace}/{key}: {reason}")
        self.namespace = namespace
        self.key = key
        self.reason = reason


class InvalidToken(ValidationError):
    """A resume or page token is malformed, or belongs to another namespace."""

    def __init__(self, token: object, reason: str) -> None:
        super().__init__(f"invalid token {token!r}: {reason}")
        self.token = token
        self.reason = reason


class PreconditionFailed(RedisMemError):
    """A write's precondition did not hold, so nothing was written.

    ``expected`` is the version the caller asked for (``None`` when the
    condition was about existence) and ``actual`` the record's version in
    Redis (0 when the record does not exist).
    """

    def __init__(
        self,
        namespace: str,
        key: str,
        expected: int | None,
        actual: int,
        message: str,
    ) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.key = key
        self.expected = expected
        self.actual = actual


class VersionConflict(PreconditionFailed):
    """The record's version is not the one the caller expected."""

    def __init__(self, namespace: str, key: str, expected: int, actual: int) -> None:
        super().__init__(
            namespace,
            key,
            expected,
            actual,
            f"version conflict on {namespace}/{key}: "
            f"expected version {expected}, found {actual or 'no record'}",
        )


class RecordExists(PreconditionFailed):
    """``create()`` found the key already present."""

    def __init__(self, namespace: str, key: str, actual: int) -> None:
        super().__init__(
            namespace,
            key,
            None,
            actual,
            f"record {namespace}/{key} already exists (version {actual})",
        )


class RecordNotFound(PreconditionFailed):
    """``update()`` (or a conditional delete) found no record."""

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(
            namespace, key, None, 0, f"record {namespace}/{key} does not exist"
        )


class StaleToken(RedisMemError):
    """A token points into a log that no longer exists or was trimmed past it.

    The reader must reload the namespace's records and continue from a fresh
    token; ``epoch`` is the log's current epoch ("" when it has none).
    """

    def __init__(self, namespace: str, token: str, epoch: str, reason: str) -> None:
        super().__init__(f"stale token for namespace {namespace!r}: {reason}")
        self.namespace = namespace
        self.token = token
        self.epoch = epoch
        self.reason = reason


class InvalidSubject(ValidationError):
    """A rate-limit subject or operation name is empty, too long or badly formed."""

    def __init__(self, subject: object, reason: str) -> None:
        super().__init__(f"invalid subject {subject!r}: {reason}")
        self.subject = subject
        self.reason = reason


class InvalidLimit(ValidationError):
    """A limit's notation or parameters are wrong; the message shows valid forms."""

    def __init__(self, limit: object, reason: str) -> None:
        super().__init__(f"invalid limit {limit!r}: {reason}")
        self.limit = limit
        self.reason = reason


class UnknownPolicy(RedisMemError, LookupError):
    """No rate-limit policy of that name is stored in Redis or registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no rate-limit policy named {name!r}")
        self.name = name


class RateLimitExceeded(RedisMemError):
    """A rate limiter refused the request; ``decision`` says why and for how long.

    ``decision`` is a ``redismem.limiter.Decision``: its ``retry_after`` is the
    wait in seconds (None when retrying cannot succeed), ``limit`` the limit
    that refused, ``reason`` the kind of refusal.
    """

    def __init__(self, subject: str, operation: str, decision: Any) -> None:
        wait = decision.retry_after
        when = "never" if wait is None else f"after {wait:.3f}s"
        super().__init__(
            f"rate limit exceeded for {subject!r} ({operation}): "
            f"{decision.reason}, retry {when}"
        )
        self.subject = subject
        self.operation = operation
        self.decision = decision


class HistoryCompacted(StaleToken):
    """Replay was asked for a point that compaction has folded away.

    Replay can rebuild any point from ``compacted_seq`` (the last event folded
    into the compacted prefix) onward; ``point`` is what was asked for.
    """

    def __init__(
        self, namespace: str, point: str, epoch: str, compacted_seq: int
    ) -> None:
        super().__init__(
            namespace,
            point,
            epoch,
            f"history up to seq {compacted_seq} was compacted; replay can "
            f"rebuild points from seq {compacted_seq} on, not {point}",
        )
        self.point = point
        self.compacted_seq = compacted_seq


class ReplayInterrupted(RedisMemError):
    """Compaction changed the log during every one of ``attempts`` replays."""

    def __init__(self, namespace: str, attempts: int) -> None:
        super().__init__(
            f"replay of {namespace!r} was interrupted by compaction "
            f"{attempts} times; try again"
        )
        self.namespace = namespace
        self.attempts = attempts
