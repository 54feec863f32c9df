"""redismem: a Redis-native memory store with change data capture.

The synchronous API lives here; ``redismem.aio`` mirrors it for asyncio.
"""

from redismem.errors import (
    InvalidKey,
    InvalidNamespace,
    InvalidToken,
    InvalidValue,
    PreconditionFailed,
    RecordExists,
    RecordNotFound,
    RedisMemError,
    StaleToken,
    ValidationError,
    VersionConflict,
)
from redismem.models import ChangeEvent, Page, Record
from redismem.store import MemoryStore

__all__ = [
    "ChangeEvent",
    "InvalidKey",
    "InvalidNamespace",
    "InvalidToken",
    "InvalidValue",
    "MemoryStore",
    "Page",
    "PreconditionFailed",
    "Record",
    "RecordExists",
    "RecordNotFound",
    "RedisMemError",
    "StaleToken",
    "ValidationError",
    "VersionConflict",
]
