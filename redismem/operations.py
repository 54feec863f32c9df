"""The store's operations as Call objects: what to send, how to read the reply.

Nothing here does I/O. ``MemoryStore`` and its asyncio twin run these calls,
so validation, key names and reply parsing exist exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from redismem import replies, scripts
from redismem.compaction import MANUAL_ONLY, CompactionPolicy
from redismem.errors import (
    RecordExists,
    RecordNotFound,
    StaleToken,
    VersionConflict,
)
from redismem.keys import NAMESPACE_DIRECTORY, FeedKeys, NamespaceKeys
from redismem.models import ChangeEvent, Op, Page, Record
from redismem.scripts import Call
from redismem.tokens import LogPosition, decode_log_token
from redismem.validation import (
    check_expected_version,
    check_key,
    check_limit,
    check_namespace,
    decode_value,
    encode_value,
)

WriteMode = Literal["put", "create", "update"]

#: One write of ``put_many``: (namespace, key, value[, expect_version]).
Write = tuple[str, str, Any] | tuple[str, str, Any, int | None]

# Reply codes shared by put.lua and delete.lua, whose replies are one string
# of space-separated fields; a flag field is "1" when set.
_OK, _VERSION_MISMATCH, _EXISTS, _MISSING = 0, 1, 2, 3
_SET = (b"1", "1")  # bytes or str, as the client decodes replies


class WriteOutcome(NamedTuple):
    """What a write script reports: the record (None after a delete).

    ``log_started`` is set when the write began a new log epoch, and
    ``compaction_due`` when the namespace's log passed a threshold of the
    compaction policy the write was sent with. (A NamedTuple: every write
    builds one, and a frozen dataclass costs a microsecond more.)
    """

    namespace: str
    record: Record | None
    log_started: bool
    compaction_due: bool = False


def write(
    namespace: str,
    key: str,
    value: Any,
    *,
    mode: WriteMode,
    expect_version: int | None,
    max_value_bytes: int,
    compaction: CompactionPolicy = MANUAL_ONLY,
) -> Call[WriteOutcome]:
    """The call that creates or updates one record (``put.lua``)."""
    check_namespace(namespace)
    check_key(key)
    expected = check_expected_version(expect_version)
    encoded = encode_value(namespace, key, value, max_value_bytes)
    keys, channel = _write_target(namespace)

    def parse(reply: Any) -> WriteOutcome:
        # "0 version created updated log_started compaction_due"
        fields = reply.split()
        code = int(fields[0])
        if code == _VERSION_MISMATCH:
            raise VersionConflict(namespace, key, int(expected), int(fields[1]))
        if code == _EXISTS:
            raise RecordExists(namespace, key, int(fields[1]))
        if code == _MISSING:
            raise RecordNotFound(namespace, key)

        # The stored JSON, decoded, so put() returns what get() would.
        stored = decode_value(encoded)
        record = Record(
            namespace, key, stored, int(fields[1]), int(fields[2]), int(fields[3])
        )
        return WriteOutcome(namespace, record, fields[4] in _SET, fields[5] in _SET)

    return Call(
        parse,
        script=scripts.load("put"),
        keys=keys,
        args=(
            namespace,
            key,
            mode,
            encoded,
            expected,
            channel,
            compaction.max_length,
            compaction.max_age_ms,
        ),
    )


def write_many(
    writes: Iterable[Write],
    *,
    max_value_bytes: int,
    compaction: CompactionPolicy = MANUAL_ONLY,
) -> list[Call[WriteOutcome]]:
    """The calls for ``put_many``; every write is validated before any is sent."""
    calls = []
    for item in writes:
        if not isinstance(item, tuple) or len(item) not in (3, 4):
            raise ValueError(
                "each write must be (namespace, key, value[, expect_version]), "
                f"not {item!r}"
            )
        namespace, key, value = item[0], item[1], item[2]
        expect_version = item[3] if len(item) == 4 else None
        calls.append(
            write(
                namespace,
                key,
                value,
                mode="put",
                expect_version=expect_version,
                max_value_bytes=max_value_bytes,
                compaction=compaction,
            )
        )
    return calls


def delete(
    namespace: str,
    key: str,
    *,
    expect_version: int | None,
    compaction: CompactionPolicy = MANUAL_ONLY,
) -> Call[WriteOutcome | None]:
    """The call that deletes one record (``delete.lua``); None if it was absent."""
    check_namespace(namespace)
    check_key(key)
    expected = check_expected_version(expect_version)
    keys, channel = _write_target(namespace)

    def parse(reply: Any) -> WriteOutcome | None:
        # "0 version log_started compaction_due"
        fields = reply.split()
        code = int(fields[0])
        if code == _VERSION_MISMATCH:
            raise VersionConflict(namespace, key, int(expected), int(fields[1]))
        if code == _MISSING:
            return None

        return WriteOutcome(namespace, None, fields[2] in _SET, fields[3] in _SET)

    return Call(
        parse,
        script=scripts.load("delete"),
        keys=keys,
        args=(
            namespace,
            key,
            expected,
            channel,
            compaction.max_length,
            compaction.max_age_ms,
        ),
    )


@lru_cache(maxsize=4096)
def _write_target(namespace: str) -> tuple[tuple[str, ...], str]:
    """The six keys and the channel a write of ``namespace`` sends.

    Cached by the (already validated) name: every write of a namespace sends
    the same ones, and building them costs more than the lookup.
    """
    names = FeedKeys(namespace)
    keys = (
        names.records,
        names.index,
        names.meta,
        names.log,
        names.compaction_index,
        names.tombstones,
    )
    return keys, names.channel


def get(namespace: str, key: str) -> Call[Record | None]:
    """The call that reads one record."""
    check_namespace(namespace)
    check_key(key)

    def parse(reply: Any) -> Record | None:
        return None if reply is None else replies.record(namespace, key, reply)

    return Call(parse, command=("HGET", NamespaceKeys(namespace).records, key))


def list_records(
    namespace: str, *, after: str | None, limit: int
) -> Call[Page[Record]]:
    """The call that reads one page of records in key order (``list.lua``)."""
    check_namespace(namespace)
    if after is not None:
        check_key(after)
    check_limit(limit)
    names = NamespaceKeys(namespace)

    def parse(reply: Any) -> Page[Record]:
        more = int(reply[0]) == 1
        items = [
            replies.record(namespace, replies.text(reply[i]), reply[i + 1])
            for i in range(1, len(reply), 2)
        ]
        return Page(items, items[-1].key if more and items else None)

    return Call(
        parse,
        script=scripts.load("list"),
        keys=(names.index, names.records),
        args=(after or "", limit),
    )


#: Operations a change event can carry.
OPS: tuple[Op, ...] = ("create", "update", "delete")

#: Most log entries one ``changes`` call examines, so a selective filter
#: never holds Redis for long; a short page then still carries ``next``.
SCAN_BUDGET = 10_000


def changes(
    namespace: str,
    *,
    after: str | None,
    limit: int,
    ops: Iterable[Op] | None = None,
    key: str | None = None,
    since: int | None = None,
    until: int | None = None,
    reverse: bool = False,
) -> Call[Page[ChangeEvent]]:
    """The call that reads one filtered page of the change log (``changes.lua``).

    ``key`` is an exact key, or a prefix when it ends with ``*``; ``since``
    and ``until`` bound the event time (Redis ms, inclusive). A page may hold
    fewer than ``limit`` events and still have a ``next`` when the filter
    skipped many entries.
    """
    check_namespace(namespace)
    check_limit(limit)
    position = decode_log_token(after) if after is not None else None
    op_filter = _op_filter(ops)
    exact, prefix = _key_filter(key)
    low, high = _time_range(since, until)
    if not isinstance(reverse, bool):
        raise ValueError(f"reverse must be a bool, not {reverse!r}")
    names = NamespaceKeys(namespace)

    def parse(reply: Any) -> Page[ChangeEvent]:
        code, epoch = int(reply[0]), replies.text(reply[1])
        if code == _STALE_EPOCH:
            assert after is not None  # only a cursor can be stale
            raise StaleToken(namespace, after, epoch, "the log has a new epoch")
        if code == _COMPACTED:
            assert after is not None
            raise StaleToken(
                namespace,
                after,
                epoch,
                f"events after it were compacted away (up to seq {int(reply[2])})",
            )

        items = [replies.stream_event(namespace, epoch, entry) for entry in reply[2]]
        if int(reply[3]) == 0:
            return Page(items, None)
        cursor = LogPosition(epoch, int(reply[5]), replies.text(reply[4]))
        return Page(items, cursor.encode())

    return Call(
        parse,
        script=scripts.load("changes"),
        keys=(names.meta, names.log),
        args=(
            position.stream_id if position else "",
            position.seq if position else "",
            position.epoch if position else "",
            limit,
            "desc" if reverse else "asc",
            op_filter,
            exact,
            prefix,
            low,
            high,
            SCAN_BUDGET,
        ),
    )


_STALE_EPOCH, _COMPACTED = 1, 2


def _op_filter(ops: Iterable[Op] | None) -> str:
    """The script argument for an operation filter: ",op,op," or "" for all."""
    if ops is None:
        return ""
    chosen = [ops] if isinstance(ops, str) else list(ops)
    unknown = [op for op in chosen if op not in OPS]
    if unknown or not chosen:
        raise ValueError(f"ops must be a non-empty choice of {OPS}, not {ops!r}")
    return "," + ",".join(chosen) + ","


def _key_filter(key: str | None) -> tuple[str, str]:
    """The (exact, prefix) script arguments for a key filter."""
    if key is None:
        return "", ""
    if isinstance(key, str) and key.endswith("*"):
        prefix = key[:-1]
        if prefix:
            # A prefix obeys the key rules, except that it may end anywhere.
            check_key(prefix)
        return "", prefix
    return check_key(key), ""


def _time_range(since: int | None, until: int | None) -> tuple[str, str]:
    """The script arguments for an event-time range in ms; "" leaves it open."""
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
        ):
            raise ValueError(f"{name} must be a time in ms (int >= 0), not {bound!r}")
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")
    return (
        "" if since is None else str(since),
        "" if until is None else str(until),
    )


def register_namespace(namespace: str) -> Call[None]:
    """The call that adds a namespace to the directory (idempotent)."""
    return Call(lambda reply: None, command=("SADD", NAMESPACE_DIRECTORY, namespace))
