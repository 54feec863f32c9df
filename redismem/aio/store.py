"""MemoryStore for asyncio: the same methods as ``redismem.MemoryStore``, awaited."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from redismem import operations
from redismem.aio.execution import run, run_pipelined
from redismem.errors import PreconditionFailed
from redismem.keys import NAMESPACE_DIRECTORY
from redismem.models import ChangeEvent, Page, Record
from redismem.operations import Write, WriteOutcome
from redismem.replies import text
from redismem.validation import DEFAULT_MAX_VALUE_BYTES

#: What put_many returns: per write, its Record or the refusal.
WriteResults = list[Record | PreconditionFailed]


class MemoryStore:
    """Records in namespaces, over an asyncio redis-py client.

    ``client`` is a ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``. Each
    write is one Lua script call that checks its precondition, writes the
    record, appends a change event to the namespace's stream and publishes it.
    """

    def __init__(self, client: Any, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES):
        self.client = client
        self.max_value_bytes = max_value_bytes

    async def put(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """Create or update a record; ``expect_version=0`` means "must not exist"."""
        return await self._write(namespace, key, value, "put", expect_version)

    async def create(self, namespace: str, key: str, value: Any) -> Record:
        """Create a record, raising RecordExists if the key is present."""
        return await self._write(namespace, key, value, "create", None)

    async def update(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """Update a record, raising RecordNotFound if the key is missing."""
        return await self._write(namespace, key, value, "update", expect_version)

    async def get(self, namespace: str, key: str) -> Record | None:
        """Return the record, or None if there is none."""
        return await run(self.client, operations.get(namespace, key))

    async def delete(
        self, namespace: str, key: str, *, expect_version: int | None = None
    ) -> bool:
        """Delete a record; False (and no event) if it did not exist."""
        call = operations.delete(namespace, key, expect_version=expect_version)
        outcome = await run(self.client, call)
        if outcome is None:
            return False
        await self._note_log_started(outcome)
        return True

    async def list(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[Record]:
        """One page of records in key order; pass ``page.next`` as ``after``."""
        return await run(
            self.client, operations.list_records(namespace, after=after, limit=limit)
        )

    async def changes(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[ChangeEvent]:
        """One page of the change log, oldest first, after the token ``after``."""
        return await run(
            self.client, operations.changes(namespace, after=after, limit=limit)
        )

    async def namespaces(self, pattern: str = "*") -> builtins.list[str]:
        """Every namespace with a change log whose name matches the glob."""
        names = self.client.sscan_iter(NAMESPACE_DIRECTORY, match=pattern)
        return sorted({text(name) async for name in names})

    async def put_many(self, writes: Iterable[Write]) -> WriteResults:
        """Send many puts in one round trip; each is atomic on its own.

        ``writes`` holds ``(namespace, key, value)`` or
        ``(namespace, key, value, expect_version)`` tuples. All are validated
        before anything is sent. The result has, per write, its Record or the
        PreconditionFailed that refused it.
        """
        calls = operations.write_many(writes, max_value_bytes=self.max_value_bytes)
        results = await run_pipelined(self.client, calls)

        written: WriteResults = []
        for result in results:
            if isinstance(result, WriteOutcome):
                await self._note_log_started(result)
                assert result.record is not None
                written.append(result.record)
            else:
                written.append(result)
        return written

    async def _write(
        self,
        namespace: str,
        key: str,
        value: Any,
        mode: operations.WriteMode,
        expect_version: int | None,
    ) -> Record:
        call = operations.write(
            namespace,
            key,
            value,
            mode=mode,
            expect_version=expect_version,
            max_value_bytes=self.max_value_bytes,
        )
        outcome = await run(self.client, call)
        await self._note_log_started(outcome)
        assert outcome.record is not None
        return outcome.record

    async def _note_log_started(self, outcome: WriteOutcome) -> None:
        # The directory spans slots, so it is written after the atomic write;
        # SADD is idempotent, and only a write that began a log pays for it.
        if outcome.log_started:
            await run(
                self.client, operations.register_namespace(outcome.event.namespace)
            )
