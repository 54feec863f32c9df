"""redismem: a Redis-native memory store with change data capture.

The synchronous API lives here; ``redismem.aio`` mirrors it for asyncio.
"""

from redismem.compaction import CompactionPolicy
from redismem.errors import (
    HistoryCompacted,
    InvalidKey,
    InvalidNamespace,
    InvalidToken,
    InvalidValue,
    PreconditionFailed,
    RecordExists,
    RecordNotFound,
    RedisMemError,
    ReplayInterrupted,
    StaleToken,
    ValidationError,
    VersionConflict,
)
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
    "ChangeEvent",
    "CompactionPolicy",
    "CompactionReport",
    "HistoryCompacted",
    "InvalidKey",
    "InvalidNamespace",
    "InvalidToken",
    "InvalidValue",
    "LogStats",
    "MemoryStore",
    "Page",
    "PreconditionFailed",
    "Record",
    "RecordExists",
    "RecordNotFound",
    "RedisMemError",
    "ReplayInterrupted",
    "Reset",
    "StaleToken",
    "Subscription",
    "ValidationError",
    "VersionConflict",
]
