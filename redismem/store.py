"""MemoryStore: namespaced JSON records whose every write is logged and published."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from redismem import compaction, held_connections, operations
from redismem.compaction import DEFAULT_POLICY, CompactionPolicy, Replayer
from redismem.errors import PreconditionFailed
from redismem.execution import run, run_pipelined
from redismem.keys import NAMESPACE_DIRECTORY
from redismem.merge import check_pattern
from redismem.models import (
    ChangeEvent,
    CompactionReport,
    LogStats,
    Op,
    Page,
    Record,
)
from redismem.operations import Write, WriteOutcome
from redismem.replies import text
from redismem.scripts import Call
from redismem.subscription import Subscription
from redismem.validation import DEFAULT_MAX_VALUE_BYTES


class MemoryStore:
    """Records in namespaces, over a synchronous redis-py client.

    ``client`` is a ``redis.Redis`` or ``redis.cluster.RedisCluster``. Each
    write is one Lua script call that checks its precondition, writes the
    record, appends a change event to the namespace's stream and publishes it.
    ``compaction`` says when writes trigger automatic log compaction
    (``compaction.MANUAL_ONLY`` turns it off).
    """

    def __init__(
        self,
        client: Any,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        compaction: CompactionPolicy = DEFAULT_POLICY,
    ):
        self.client = client
        self.max_value_bytes = max_value_bytes
        self.compaction = compaction
        # Script calls skip redis-py's per-command overhead on connections
        # the store keeps (a plain redis.Redis only; see held_connections).
        self._held = held_connections.for_client(client)

    def put(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """Create or update a record; ``expect_version=0`` means "must not exist"."""
        return self._write(namespace, key, value, "put", expect_version)

    def create(self, namespace: str, key: str, value: Any) -> Record:
        """Create a record, raising RecordExists if the key is present."""
        return self._write(namespace, key, value, "create", None)

    def update(
        self, namespace: str, key: str, value: Any, *, expect_version: int | None = None
    ) -> Record:
        """Update a record, raising RecordNotFound if the key is missing."""
        return self._write(namespace, key, value, "update", expect_version)

    def get(self, namespace: str, key: str) -> Record | None:
        """Return the record, or None if there is none."""
        return run(self.client, operations.get(namespace, key), self._held)

    def delete(
        self, namespace: str, key: str, *, expect_version: int | None = None
    ) -> bool:
        """Delete a record; False (and no event) if it did not exist."""
        call = operations.delete(
            namespace, key, expect_version=expect_version, compaction=self.compaction
        )
        outcome = run(self.client, call, self._held)
        if outcome is None:
            return False
        self._after_write(outcome)
        return True

    def list(
        self, namespace: str, *, after: str | None = None, limit: int = 100
    ) -> Page[Record]:
        """One page of records in key order; pass ``page.next`` as ``after``."""
        call = operations.list_records(namespace, after=after, limit=limit)
        return run(self.client, call, self._held)

    def changes(
        self,
        namespace: str,
        *,
        after: str | None = None,
        limit: int = 100,
        ops: Iterable[Op] | None = None,
        key: str | None = None,
        since: int | None = None,
        until: int | None = None,
        reverse: bool = False,
    ) -> Page[ChangeEvent]:
        """One page of the change log; pass ``page.next`` as ``after``.

        Filters: ``ops`` (operations to keep), ``key`` (exact, or a prefix
        ending in ``*``), ``since``/``until`` (Redis time in ms, inclusive).
        Oldest first, or newest first with ``reverse``. Without ``after`` the
        page starts after the compacted prefix (see ``replay``). Raises
        StaleToken if ``after`` is from another epoch or events after it were
        compacted away.
        """
        call = operations.changes(
            namespace,
            after=after,
            limit=limit,
            ops=ops,
            key=key,
            since=since,
            until=until,
            reverse=reverse,
        )
        return run(self.client, call, self._held)

    def subscribe(
        self, *patterns: str, resume: str | None = None, start: str = "now"
    ) -> Subscription:
        """Follow the change feeds of namespaces matching ``patterns``.

        A pattern is a namespace or a glob (``users:*``, ``*``). ``start`` is
        ``"now"`` or ``"earliest"``; ``resume`` (a ``resume_token``) takes
        precedence for the namespaces it covers. Returns an iterator of
        ChangeEvent and Reset items that is also a context manager.
        """
        return Subscription(self.client, patterns, resume=resume, start=start)

    def replay(
        self, namespace: str, *, until: str | int | None = None
    ) -> dict[str, Record]:
        """Rebuild the namespace's records (key -> Record) from its log.

        ``until`` is a change-log token (the records just after that event),
        a Redis time in ms, or None for the head. Raises HistoryCompacted for
        a point before the compacted prefix.
        """
        replayer = Replayer(namespace, until)
        while (call := replayer.next_call()) is not None:
            replayer.on_page(run(self.client, call, self._held))
        return replayer.records

    def compact(self, namespace: str) -> CompactionReport:
        """Compact the whole log now, batch by batch; each batch is atomic."""
        call = compaction.compact_batch(namespace, self.compaction, everything=True)
        folded = removed = batches = 0
        while True:
            outcome = run(self.client, call, self._held)
            folded += outcome.folded
            removed += outcome.tombstones_removed
            batches += 1
            if not outcome.pending:
                break
        return CompactionReport(
            namespace, folded, removed, batches, outcome.compacted_seq, outcome.floor
        )

    def stats(self, pattern: str = "*") -> builtins.list[LogStats]:
        """Size and position of the log of every namespace matching ``pattern``."""
        check_pattern(pattern)
        calls = [compaction.stats(namespace) for namespace in self.namespaces(pattern)]
        return run_pipelined(self.client, calls, self._held) if calls else []

    def namespaces(self, pattern: str = "*") -> builtins.list[str]:
        """Every namespace with a change log whose name matches the glob."""
        names = self.client.sscan_iter(NAMESPACE_DIRECTORY, match=pattern)
        return sorted({text(name) for name in names})

    def put_many(
        self, writes: Iterable[Write]
    ) -> builtins.list[Record | PreconditionFailed]:
        """Send many puts in one round trip; each is atomic on its own.

        ``writes`` holds ``(namespace, key, value)`` or
        ``(namespace, key, value, expect_version)`` tuples. All are validated
        before anything is sent. The result has, per write, its Record or the
        PreconditionFailed that refused it.
        """
        calls = operations.write_many(
            writes, max_value_bytes=self.max_value_bytes, compaction=self.compaction
        )
        results = run_pipelined(self.client, calls, self._held)
        outcomes: builtins.list[Record | PreconditionFailed] = []
        for result in results:
            if isinstance(result, WriteOutcome):
                assert result.record is not None
                outcomes.append(result.record)
            else:
                outcomes.append(result)
        self._after_write(
            *(result for result in results if isinstance(result, WriteOutcome))
        )
        return outcomes

    def _write(
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
            compaction=self.compaction,
        )
        outcome = run(self.client, call, self._held)
        if outcome.log_started or outcome.compaction_due:
            self._after_write(outcome)
        assert outcome.record is not None
        return outcome.record

    def _after_write(self, *outcomes: WriteOutcome) -> None:
        # The directory spans slots, so it is written after the atomic write;
        # SADD is idempotent, and only a write that began a log pays for it.
        started = {o.namespace for o in outcomes if o.log_started}
        # A write that found the log past a threshold compacts one batch (one
        # per namespace for many writes): the cost is spread over writes, and
        # each batch is atomic on its own.
        due = {o.namespace for o in outcomes if o.compaction_due}
        calls: builtins.list[Call[Any]] = [
            operations.register_namespace(ns) for ns in sorted(started)
        ]
        calls += [
            compaction.compact_batch(ns, self.compaction, everything=False)
            for ns in sorted(due)
        ]
        if len(calls) == 1:
            run(self.client, calls[0], self._held)
        elif calls:
            run_pipelined(self.client, calls, self._held)
