"""RateLimitedStore: a MemoryStore behind a rate-limit policy."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from redismem.errors import PreconditionFailed, RateLimitExceeded
from redismem.limiter.decision import Decision
from redismem.limiter.limiter import RateLimiter
from redismem.limiter.subjects import check_operation, check_subject
from redismem.models import ChangeEvent, Page, Record
from redismem.operations import Write
from redismem.store import MemoryStore

#: Which policy operation each store method counts against.
STORE_OPERATIONS: Mapping[str, str] = {
    "get": "read",
    "list": "list",
    "changes": "list",
    "namespaces": "list",
    "put": "write",
    "create": "write",
    "update": "write",
    "put_many": "write",
    "delete": "delete",
}


def operation_map(overrides: Mapping[str, str] | None) -> dict[str, str]:
    """The method -> operation map, with ``overrides`` applied and checked."""
    operations = dict(STORE_OPERATIONS)
    for method, operation in (overrides or {}).items():
        if method not in STORE_OPERATIONS:
            raise ValueError(f"MemoryStore has no rate-limited method {method!r}")
        operations[method] = check_operation(operation)
    return operations


def refused(subject: str, operation: str, decision: Decision) -> None:
    """Raise RateLimitExceeded unless ``decision`` allowed the call."""
    if not decision.allowed:
        raise RateLimitExceeded(subject, operation, decision)


class RateLimitedStore:
    """The methods of ``MemoryStore``, each first hitting a policy's limits.

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

    def put(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """``MemoryStore.put`` after a ``write`` hit."""
        self._admit("put")
        return self.store.put(namespace, key, value, expect_version=expect_version)

    def create(self, namespace: str, key: str, value: Any) -> Record:
        """``MemoryStore.create`` after a ``write`` hit."""
        self._admit("create")
        return self.store.create(namespace, key, value)

    def update(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """``MemoryStore.update`` after a ``write`` hit."""
        self._admit("update")
        return self.store.update(namespace, key, value, expect_version=expect_version)

    def get(self, namespace: str, key: str) -> Record | None:
        """``MemoryStore.get`` after a ``read`` hit."""
        self._admit("get")
        return self.store.get(namespace, key)

    def delete(
        self, namespace: str, key: str, *, expect_version: int | None = None
    ) -> bool:
        """``MemoryStore.delete`` after a ``delete`` hit."""
        self._admit("delete")
        return self.store.delete(namespace, key, expect_version=expect_version)

    def list(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[Record]:
        """``MemoryStore.list`` after a ``list`` hit."""
        self._admit("list")
        return self.store.list(namespace, after=after, limit=limit)

    def changes(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[ChangeEvent]:
        """``MemoryStore.changes`` after a ``list`` hit."""
        self._admit("changes")
        return self.store.changes(namespace, after=after, limit=limit)

    def namespaces(self, pattern: str = "*") -> builtins.list[str]:
        """``MemoryStore.namespaces`` after a ``list`` hit."""
        self._admit("namespaces")
        return self.store.namespaces(pattern)

    def put_many(
        self, writes: Iterable[Write]
    ) -> builtins.list[Record | PreconditionFailed]:
        """``MemoryStore.put_many`` after a ``write`` hit costing one per write."""
        batch = list(writes)
        self._admit("put_many", cost=max(1, len(batch)))
        return self.store.put_many(batch)

    def _admit(self, method: str, cost: int = 1) -> Decision:
        operation = self.operations[method]
        decision = self.limiter.hit_policy(
            self.subject, self.policy, operation, cost=cost
        )
        refused(self.subject, operation, decision)
        return decision
