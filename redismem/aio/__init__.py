"""The asyncio twin of redismem: same class and method names, awaited."""

from redismem.aio.limited_store import RateLimitedStore
from redismem.aio.limiter import RateLimiter
from redismem.aio.store import MemoryStore

__all__ = ["MemoryStore", "RateLimitedStore", "RateLimiter"]
