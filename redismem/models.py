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
