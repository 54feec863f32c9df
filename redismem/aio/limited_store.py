"""RateLimitedStore for asyncio: the twin of ``redismem.RateLimitedStore``."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from redismem.aio.limiter import RateLimiter
from redismem.aio.store import MemoryStore
from redismem.errors import PreconditionFailed
from redismem.limiter.decision import Decision
from redismem.limiter.store import operation_map, refused
from redismem.limiter.subjects import check_subject
from redismem.models import ChangeEvent, Page, Record
from redismem.operations import Write


class RateLimitedStore:
    """The methods of the asyncio ``MemoryStore``, each first hitting a policy.

    Every method counts as an operation of ``policy`` (``STORE_OPERATIONS``:
    reads are ``read``, writes ``write``, ``put_many`` costs one per write,
    ...) for ``subject``; a refusal raises RateLimitExceeded carrying the
    Decision, and the store is not touched.
    """

    def __init__(
        self,
        store: MemoryStore,
        limiter: RateLimiter,
        *,
        policy: str,
        subject: str,
        operations: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.policy = policy
        self.subject = check_subject(subject)
        self.operations = operation_map(operations)

    def for_subject(self, subject: str) -> RateLimitedStore:
        """The same store, policy and limiter, for another subject."""
        return RateLimitedStore(
            self.store,
            self.limiter,
            policy=self.policy,
            subject=subject,
            operations=self.operations,
        )

    async def put(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """``MemoryStore.put`` after a ``write`` hit."""
        await self._admit("put")
        return await self.store.put(
            namespace, key, value, expect_version=expect_version
        )

    async def create(self, namespace: str, key: str, value: Any) -> Record:
        """``MemoryStore.create`` after a ``write`` hit."""
        await self._admit("create")
        return await self.store.create(namespace, key, value)

    async def update(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """``MemoryStore.update`` after a ``write`` hit."""
        await self._admit("update")
        return await self.store.update(
            namespace, key, value, expect_version=expect_version
        )

    async def get(self, namespace: str, key: str) -> Record | None:
        """``MemoryStore.get`` after a ``read`` hit."""
        await self._admit("get")
        return await self.store.get(namespace, key)

    async def delete(
        self, namespace: str, key: str, *, expect_version: int | None = None
    ) -> bool:
        """``MemoryStore.delete`` after a ``delete`` hit."""
        await self._admit("delete")
        return await self.store.delete(namespace, key, expect_version=expect_version)

    async def list(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[Record]:
        """``MemoryStore.list`` after a ``list`` hit."""
        await self._admit("list")
        return await self.store.list(namespace, after=after, limit=limit)

    async def changes(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[ChangeEvent]:
        """``MemoryStore.changes`` after a ``list`` hit."""
        await self._admit("changes")
        return await self.store.changes(namespace, after=after, limit=limit)

    async def namespaces(self, pattern: str = "*") -> builtins.list[str]:
        """``MemoryStore.namespaces`` after a ``list`` hit."""
        await self._admit("namespaces")
        return await self.store.namespaces(pattern)

    async def put_many(
        self, writes: Iterable[Write]
    ) -> builtins.list[Record | PreconditionFailed]:
        """``MemoryStore.put_many`` after a ``write`` hit costing one per write."""
        batch = list(writes)
        await self._admit("put_many", cost=max(1, len(batch)))
        return await self.store.put_many(batch)

    async def _admit(self, method: str, cost: int = 1) -> Decision:
        operation = self.operations[method]
        decision = await self.limiter.hit_policy(
            self.subject, self.policy, operation, cost=cost
        )
        refused(self.subject, operation, decision)
        return decision
