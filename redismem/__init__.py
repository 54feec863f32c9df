"""redismem: a Redis-native memory store with change data capture.

The synchronous API lives here; ``redismem.aio`` mirrors it for asyncio.
``RateLimiter`` and its companions come from ``redismem.limiter``.
"""

from redismem.errors import (
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
from redismem.models import ChangeEvent, Page, Record
from redismem.store import MemoryStore

__all__ = [
    "Backoff",
    "ChangeEvent",
    "Decision",
    "InvalidKey",
    "InvalidLimit",
    "InvalidNamespace",
    "InvalidSubject",
    "InvalidToken",
    "InvalidValue",
    "Limit",
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
    "StaleToken",
    "UnknownPolicy",
    "UsageRetention",
    "ValidationError",
    "VersionConflict",
]
