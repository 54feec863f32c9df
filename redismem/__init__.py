"""redismem: a Redis-native memory store with change data capture.

The synchronous API lives here; ``redismem.aio`` mirrors it for asyncio.
``RateLimiter`` and its companions come from ``redismem.limiter``.
"""

from redismem.compaction import CompactionPolicy
from redismem.errors import (
    HistoryCompacted,
    InvalidKey,
    InvalidLimit,
    InvalidNamespace,
    InvalidSubject,
    InvalidToken,
    InvalidValue,
    PreconditionFailed,
    RateLimitExceeded,
    RecordExists,
    RecordNotFound,
    RedisMemError,
    ReplayInterrupted,
    StaleToken,
    UnknownPolicy,
    ValidationError,
    VersionConflict,
)
from redismem.limiter import (
    Backoff,
    Decision,
    Limit,
    Policy,
    RateLimiter,
    UsageRetention,
)
from redismem.limiter.store import RateLimitedStore
from redismem.models import (
    ChangeEvent,
    CompactionReport,
    LogStats,
    Page,
    Record,
    Reset,
)
from redismem.store import MemoryStore
from redismem.subscription import Subscription

__all__ = [
    "Backoff",
    "ChangeEvent",
    "CompactionPolicy",
    "CompactionReport",
    "Decision",
    "HistoryCompacted",
    "InvalidKey",
    "InvalidLimit",
    "InvalidNamespace",
    "InvalidSubject",
    "InvalidToken",
    "InvalidValue",
    "Limit",
    "LogStats",
    "MemoryStore",
    "Page",
    "Policy",
    "PreconditionFailed",
    "RateLimitExceeded",
    "RateLimitedStore",
    "RateLimiter",
    "Record",
    "RecordExists",
    "RecordNotFound",
    "RedisMemError",
    "ReplayInterrupted",
    "Reset",
    "StaleToken",
    "Subscription",
    "UnknownPolicy",
    "UsageRetention",
    "ValidationError",
    "VersionConflict",
]
