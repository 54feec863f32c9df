"""The objects redismem hands to callers: records, change events, pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

Op = Literal["create", "update", "delete"]
T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One record as stored: its JSON value and version, with Redis times (ms)."""

    namespace: str
    key: str
    value: Any
    version: int
    created: int
    updated: int


@dataclass(frozen=True)
class ChangeEvent:
    """One entry of a namespace's change log.

    ``seq`` counts the namespace's events from 1 without gaps within one
    ``epoch``; ``token`` is the opaque resume position just after this event.
    """

    namespace: str
    key: str
    op: Op
    version: int
    seq: int
    ts: int
    value: Any
    epoch: str
    id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; ``next`` continues after it, ``None`` at the end."""

    items: list[T]
    next: str | None


@dataclass(frozen=True)
class Reset:
    """A subscription lost its place in a namespace's log: start again here.

    ``records`` are the namespace's records at the log position ``token``
    (seq ``seq`` of ``epoch``); live events continue from there. ``reason``
    says why: a new epoch, compacted history or a gap that could not be filled.
    """

    namespace: str
    records: list[Record]
    epoch: str
    seq: int
    reason: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class CompactionReport:
    """What ``compact`` did to one namespace's log.

    ``compacted_seq`` is the last event folded into the compacted prefix;
    ``floor`` the highest seq ever removed (a cursor below it is stale).
    """

    namespace: str
    folded: int
    tombstones_removed: int
    batches: int
    compacted_seq: int
    floor: int


@dataclass(frozen=True)
class LogStats:
    """Size and position of one namespace's change log.

    ``memory`` is bytes as ``MEMORY USAGE`` reports them for every key of the
    namespace, ``None`` where the server has no MEMORY command.
    """

    namespace: str
    epoch: str
    events: int
    first_seq: int
    last_seq: int
    compacted_seq: int
    floor: int
    records: int
    memory: int | None
