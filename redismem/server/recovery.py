"""Resuming without gaps, without I/O: merge history with live events.

A joining subscriber is registered with the fan-out first, so every live
event from then on lands in its buffer; then it reads the change log after
its token. The two overlap, and :class:`Merger` turns them into one run with
no duplicates and no gaps: it drops what was already delivered (by ``seq``),
delivers what follows contiguously, and says when it needs more history (a
gap) or a reset (the token's epoch is gone). The caller does the reading.

The rules are the change feed's (:mod:`redismem.merge`): a namespace with
no position is read from the start of its log, and history that does not
reach back to a position means a reset. The classes stay apart because the
server's events are :class:`OutgoingEvent` objects whose frames are encoded
once for every connection, while ``FeedMerger`` works on decoded
``ChangeEvent`` values; the server does reuse the feed's history call for
reads from the start (:func:`redismem.server.history.page_after`).

:class:`Sequencer` is the fan-out's own check on the live stream: one
process-wide position per namespace, which drops duplicates (a message that
matched two Redis patterns) and reports a broken stream (a gap or a new epoch).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from redismem.server.events import OutgoingEvent
from redismem.tokens import LogPosition


class Outcome(enum.Enum):
    """What a drain of the live buffer found."""

    DONE = "done"  # buffer merged; the subscriber can go live
    NEED_HISTORY = "need_history"  # a gap: read the log after ``position``
    STALE = "stale"  # another epoch: reset the subscriber


class Merger:
    """The merge of one namespace's history and buffered live events.

    ``position`` is the last event delivered; None means "from the start of
    the log": the namespace had no log when the subscriber joined, or the
    subscriber never saw it (a resume that leaves it out), so its first
    event must be seq 1. The same rule as the change feed's
    :class:`redismem.merge.FeedMerger`.
    """

    def __init__(self, namespace: str, position: LogPosition | None) -> None:
        self.namespace = namespace
        self.position = position
        self.buffer: list[OutgoingEvent] = []

    def offer_live(self, event: OutgoingEvent) -> None:
        """Hold a live event until the history before it is delivered."""
        self.buffer.append(event)

    def take_history(self, events: Iterable[OutgoingEvent]) -> list[OutgoingEvent]:
        """Events from a log page that follow ``position``, in order.

        Stops at an event beyond the next one (the history the subscriber
        needs was compacted away): ``misses`` then says so.
        """
        delivered = []
        for event in events:
            if self._follows(event):
                delivered.append(event)
                self.position = event.position
            elif self._beyond(event):
                break
        return delivered

    def misses(self, events: list[OutgoingEvent]) -> bool:
        """Whether a log page read after ``position`` starts past the next event.

        Reading "from the start" of a compacted log begins after the
        compacted prefix: what came before can only be had as a reset.
        """
        for event in events:
            if self._follows(event):
                return False
            if self._beyond(event):
                return True
        return False

    def drain(self) -> tuple[list[OutgoingEvent], Outcome]:
        """Deliver the buffered events that follow ``position`` contiguously.

        On NEED_HISTORY or STALE the events not yet delivered stay buffered.
        """
        delivered: list[OutgoingEvent] = []
        for index, event in enumerate(self.buffer):
            position = self.position
            if position is not None and event.epoch != position.epoch:
                del self.buffer[:index]
                return delivered, Outcome.STALE
            if position is not None and event.seq <= position.seq:
                continue
            if not self._follows(event):
                del self.buffer[:index]
                return delivered, Outcome.NEED_HISTORY
            delivered.append(event)
            self.position = event.position

        self.buffer.clear()
        return delivered, Outcome.DONE

    def rebase(self, position: LogPosition | None) -> None:
        """Continue from ``position`` after a reset."""
        self.position = position

    def _follows(self, event: OutgoingEvent) -> bool:
        if self.position is None:
            return event.seq == 1
        return event.epoch == self.position.epoch and event.seq == self.position.seq + 1

    def _beyond(self, event: OutgoingEvent) -> bool:
        if self.position is None:
            return event.seq > 1
        return event.epoch != self.position.epoch or event.seq > self.position.seq + 1


class Verdict(enum.Enum):
    """The Sequencer's judgement of one live event."""

    DELIVER = "deliver"
    DUPLICATE = "duplicate"
    BROKEN = "broken"  # a gap or a new epoch: subscribers must resume


class Sequencer:
    """The process-wide position of each namespace's live stream."""

    def __init__(self) -> None:
        self._positions: dict[str, tuple[str, int]] = {}

    def check(self, event: OutgoingEvent) -> Verdict:
        """Judge ``event`` and, unless it is a duplicate, advance to it."""
        known = self._positions.get(event.namespace)
        self._positions[event.namespace] = (event.epoch, event.seq)
        if known is None:
            return Verdict.DELIVER

        epoch, seq = known
        if event.epoch == epoch and event.seq <= seq:
            self._positions[event.namespace] = known
            return Verdict.DUPLICATE
        if event.epoch == epoch and event.seq == seq + 1:
            return Verdict.DELIVER
        return Verdict.BROKEN

    def position(self, namespace: str) -> tuple[str, int] | None:
        """The (epoch, seq) of the namespace's last live event, if any."""
        return self._positions.get(namespace)

    def forget(self, matches: object) -> None:
        """Forget every namespace ``matches(namespace)`` accepts.

        Called when the process stops listening on a pattern: a position
        kept across a pause in listening would report a false gap.
        """
        assert callable(matches)
        for namespace in [ns for ns in self._positions if matches(ns)]:
            del self._positions[namespace]

    def clear(self) -> None:
        """Forget everything (the pub/sub link was lost)."""
        self._positions.clear()
