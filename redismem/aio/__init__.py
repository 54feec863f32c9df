"""The asyncio twin of redismem: same class and method names, awaited."""

from redismem.aio.store import MemoryStore

__all__ = ["MemoryStore"]
