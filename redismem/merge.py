"""Sans-I/O merging of history and live events into one gap-free feed.

A subscription receives live events over pub/sub and reads history from the
namespaces' logs. ``FeedMerger`` decides, without doing any I/O, what each
namespace needs next (a history page, a reset snapshot, nothing) and which
events to hand to the caller, so the sync and asyncio subscriptions share all
of it and differ only in how they talk to Redis.

Per namespace the invariant is: events come out in seq order, each once, and
``position`` is the last one handed out. A live event that does not follow
``position`` makes the namespace read history from ``position``; history
that cannot be read (new epoch, compacted away) makes it ask for a reset.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from redismem import replies
from redismem.errors import InvalidNamespace, InvalidToken
from redismem.models import ChangeEvent, Record, Reset
from redismem.tokens import (
    LogPosition,
    decode_feed_token,
    decode_log_token,
    encode_feed_token,
)
from redismem.validation import check_namespace

logger = logging.getLogger(__name__)

FeedItem = ChangeEvent | Reset

#: Characters a namespace glob may use beside those of namespaces.
GLOB_CHARACTERS = "*?[]^!\\"

#: Where a namespace whose log the subscription has not seen yet starts: before
#: seq 1 of whatever epoch the log has.
START = LogPosition("", 0, "0-0")


class Need(enum.Enum):
    """What a namespace needs from Redis before its feed can go on."""

    NOTHING = "nothing"
    HISTORY = "history"
    RESET = "reset"


def check_pattern(pattern: object) -> str:
    """Return a namespace or namespace glob, or raise InvalidNamespace."""
    if not isinstance(pattern, str):
        raise InvalidNamespace(pattern, "a pattern must be a string")
    if not is_glob(pattern):
        return check_namespace(pattern)
    # A glob is checked as a namespace with its glob characters taken out.
    plain = "".join("a" if c in GLOB_CHARACTERS else c for c in pattern)
    try:
        check_namespace(plain)
    except InvalidNamespace as exc:
        raise InvalidNamespace(pattern, exc.reason) from None
    return pattern


def check_subscription(patterns: Sequence[object], start: object) -> list[str]:
    """Validate a subscription's patterns and start; return the patterns."""
    if not patterns:
        raise ValueError("subscribe needs at least one namespace or pattern")
    if start not in ("now", "earliest"):
        raise ValueError(f'start must be "now" or "earliest", not {start!r}')
    return [check_pattern(pattern) for pattern in patterns]


def resume_positions(resume: object, patterns: Sequence[str]) -> dict[str, LogPosition]:
    """Decode a resume token for a subscription on ``patterns``.

    A subscription token is expected; a single event's token is accepted too
    when the subscription names exactly one namespace.
    """
    if isinstance(resume, str) and resume.count(".") == 2:
        if len(patterns) != 1 or is_glob(patterns[0]):
            raise InvalidToken(
                resume,
                "an event token resumes a subscription to one namespace only",
            )
        return {patterns[0]: decode_log_token(resume)}
    return decode_feed_token(resume)


def matches(namespace: str, patterns: Iterable[str]) -> bool:
    """Whether a namespace matches one of the patterns."""
    return any(fnmatchcase(namespace, pattern) for pattern in patterns)


def is_glob(pattern: str) -> bool:
    """Whether a pattern matches namespaces by glob rather than by name."""
    return any(c in GLOB_CHARACTERS for c in pattern)


@dataclass(frozen=True)
class HistoryPage:
    """One page of a namespace's log, as the merger needs it.

    ``stale`` is set (with the reason) when the page could not be read from
    the position asked for; ``more`` when further pages follow.
    """

    epoch: str
    events: list[ChangeEvent]
    more: bool
    stale: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A namespace's records at one log position, read atomically."""

    epoch: str
    seq: int
    last_id: str
    records: list[Record]


class NamespaceFeed:
    """The merge state of one namespace."""

    def __init__(self, namespace: str, position: LogPosition, need: Need) -> None:
        self.namespace = namespace
        self.position = position
        self.need = need
        self.reset_reason = ""
        # Live events not merged yet: held while history is read.
        self.live: deque[ChangeEvent] = deque()

    def on_live(self, event: ChangeEvent) -> list[ChangeEvent]:
        """Take one live event; return the events that can go out now."""
        self.live.append(event)
        return self.drain()

    def on_history(self, page: HistoryPage) -> list[ChangeEvent]:
        """Take one history page read after ``position``."""
        if page.stale is not None:
            self._ask_reset(page.stale)
            return []
        if self.position.epoch == "":
            if not page.epoch:
                # No log (any more): held events belong to a log that is
                # gone; the namespace comes back with its next live event.
                self.live.clear()
                self.need = Need.NOTHING
                return []
            self.position = LogPosition(page.epoch, 0, self.position.stream_id)

        out: list[ChangeEvent] = []
        for event in page.events:
            if event.seq <= self.position.seq:
                # Already handed out; read on after it (a position may carry
                # an older stream ID than its seq, e.g. from a log written
                # before entry IDs were kept in the metadata).
                self.position = LogPosition(
                    self.position.epoch, self.position.seq, event.id
                )
                continue
            if event.seq != self.position.seq + 1:
                self._ask_reset(
                    f"the log skips from seq {self.position.seq} to {event.seq}"
                )
                return out
            out.append(event)
            self._advance(event)

        if not page.more:
            self.need = Need.NOTHING
            out += self.drain()
        return out

    def on_snapshot(self, snapshot: Snapshot) -> Reset:
        """Take the snapshot asked for; return the Reset to hand out."""
        self.position = (
            LogPosition(snapshot.epoch, snapshot.seq, snapshot.last_id)
            if snapshot.epoch
            else START
        )
        reset = Reset(
            namespace=self.namespace,
            records=snapshot.records,
            epoch=snapshot.epoch,
            seq=snapshot.seq,
            reason=self.reset_reason,
            token=self.position.encode() if snapshot.epoch else "",
        )
        logger.info("reset %s: %s", self.namespace, self.reset_reason)
        self.need = Need.NOTHING
        return reset

    def catch_up(self) -> None:
        """Read history from ``position`` again (after a reconnect)."""
        if self.need is Need.NOTHING:
            self.need = Need.HISTORY

    def drain(self) -> list[ChangeEvent]:
        """Merge held live events until one needs history or a reset first."""
        out = []
        while self.live and self.need is Need.NOTHING:
            event = self.live[0]
            if self.position.epoch == "":
                if event.seq == 1:
                    # The first event of a log: nothing comes before it.
                    self.position = LogPosition(event.epoch, 0, "0-0")
                    continue
                # The log's epoch is unknown: read it from the start.
                self.need = Need.HISTORY
                break
            if event.epoch != self.position.epoch:
                if int(event.epoch) < int(self.position.epoch):
                    self.live.popleft()  # a message from a log that is gone
                    continue
                self._ask_reset("the log has a new epoch")
                break
            if event.seq <= self.position.seq:
                self.live.popleft()  # already handed out (history or a duplicate)
                continue
            if event.seq > self.position.seq + 1:
                # Messages were lost (a dropped connection): fill from the log.
                logger.debug(
                    "gap in %s after seq %d", self.namespace, self.position.seq
                )
                self.need = Need.HISTORY
                break
            out.append(self.live.popleft())
            self._advance(event)
        return out

    def _advance(self, event: ChangeEvent) -> None:
        self.position = LogPosition(event.epoch, event.seq, event.id)

    def _ask_reset(self, reason: str) -> None:
        self.need = Need.RESET
        self.reset_reason = reason


class FeedMerger:
    """Every namespace of one subscription, and the items ready to hand out.

    ``positions`` (from a resume token) place known namespaces; others found
    at start are placed at their head (``start="now"``) or at their log's
    start (``"earliest"``); namespaces first seen later start at their log's
    start, as they were created after the subscription began.
    """

    def __init__(
        self,
        patterns: Iterable[str],
        *,
        positions: Mapping[str, LogPosition] | None,
        start: str,
    ) -> None:
        self.patterns = tuple(patterns)
        self.start = start
        self.feeds: dict[str, NamespaceFeed] = {}
        self.ready: deque[FeedItem] = deque()
        self._resume = dict(positions or {})
        # With a resume token, a namespace it does not cover is newer than
        # the token, so it is read from the start of its log.
        self._resuming = positions is not None
        # What the caller has been handed: the basis of resume_token.
        self._handed: dict[str, LogPosition] = {}
        self._started = False

    @property
    def exact_namespaces(self) -> list[str]:
        """Patterns that name one namespace."""
        return [p for p in self.patterns if not is_glob(p)]

    @property
    def globs(self) -> list[str]:
        """Patterns that match namespaces by glob."""
        return [p for p in self.patterns if is_glob(p)]

    @property
    def resumed_namespaces(self) -> list[str]:
        """Namespaces of the resume token that the patterns still match."""
        return [ns for ns in self._resume if matches(ns, self.patterns)]

    def place(self, namespace: str, head: LogPosition | None) -> None:
        """Add a namespace found when the subscription starts or reconnects.

        ``head`` is its log's last position (None when it has no log); used
        only with ``start="now"`` on the first connect.
        """
        if namespace in self.feeds:
            return
        if namespace in self._resume:
            feed = NamespaceFeed(namespace, self._resume[namespace], Need.HISTORY)
        elif (
            self.start == "now"
            and not self._resuming
            and not self._started
            and head is not None
        ):
            feed = NamespaceFeed(namespace, head, Need.NOTHING)
        elif self.start == "now" and not self._resuming and not self._started:
            # No log yet when the subscription began: every event of it will
            # arrive live, from seq 1.
            feed = NamespaceFeed(namespace, START, Need.NOTHING)
        else:
            feed = NamespaceFeed(namespace, START, Need.HISTORY)
        self.feeds[namespace] = feed
        if feed.position.epoch:
            self._handed[namespace] = feed.position

    @property
    def has_started(self) -> bool:
        """Whether the first connect is done."""
        return self._started

    def started(self) -> None:
        """Mark the first connect as done: later namespaces are new ones."""
        self._started = True

    def on_message(self, channel: str, data: bytes | str) -> None:
        """Take one pub/sub message of a change channel."""
        event = replies.published_event(data)
        feed = self.feeds.get(event.namespace)
        if feed is None:
            logger.info("new namespace %s", event.namespace)
            self.place(event.namespace, None)
            feed = self.feeds[event.namespace]
            # History is read only if this event is not the log's first.
            feed.need = Need.NOTHING
        self.ready.extend(feed.on_live(event))

    def on_history(self, namespace: str, page: HistoryPage) -> None:
        """Take one history page for ``namespace``."""
        self.ready.extend(self.feeds[namespace].on_history(page))

    def on_snapshot(self, namespace: str, snapshot: Snapshot) -> None:
        """Take the reset snapshot for ``namespace``."""
        feed = self.feeds[namespace]
        self.ready.append(feed.on_snapshot(snapshot))
        self.ready.extend(feed.drain())

    def catch_up(self) -> None:
        """After a reconnect: every namespace reads history from its position."""
        for feed in self.feeds.values():
            feed.catch_up()

    def next_need(self) -> tuple[NamespaceFeed, Need] | None:
        """A namespace that needs Redis before it can go on, if any."""
        for feed in self.feeds.values():
            if feed.need is not Need.NOTHING:
                return feed, feed.need
        return None

    def pop(self) -> FeedItem | None:
        """The next item to hand out, recording it for the resume token."""
        if not self.ready:
            return None
        item = self.ready.popleft()
        if isinstance(item, Reset):
            if item.epoch:
                self._handed[item.namespace] = LogPosition(
                    item.epoch, item.seq, _reset_id(item)
                )
            else:
                self._handed.pop(item.namespace, None)
        else:
            self._handed[item.namespace] = LogPosition(item.epoch, item.seq, item.id)
        return item

    @property
    def resume_token(self) -> str:
        """The position just after the last item handed out, every namespace."""
        return encode_feed_token(self._handed)


def _reset_id(reset: Reset) -> str:
    return reset.token.rsplit(".", 1)[1]
