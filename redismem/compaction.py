"""Log compaction: its policy, and the calls that compact, replay and measure.

Compaction folds a namespace's oldest events, in order, into the compacted
prefix of its log, which keeps only the latest event of every key, and drops
tombstones once their retention is over. That prefix is the snapshot replay
starts from. Each batch is one atomic script call (``compact.lua``), so
compaction is safe beside writers and subscribers and never blocks Redis for
long. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redismem import replies, scripts
from redismem.errors import HistoryCompacted, ReplayInterrupted, StaleToken
from redismem.keys import FeedKeys
from redismem.models import LogStats, Record
from redismem.scripts import Call
from redismem.tokens import LogPosition, decode_log_token
from redismem.validation import check_namespace

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class CompactionPolicy:
    """When and how much a store compacts a namespace's log.

    Automatic compaction is due when more than ``max_length`` events are
    uncompacted, or the oldest uncompacted event is older than ``max_age_ms``
    (0 turns either rule off). It then folds one ``batch`` of events, leaving
    the newest ``max_length - batch`` unfolded. Tombstones stay in the
    compacted log for ``tombstone_retention_ms`` after the delete.
    """

    max_length: int = 10_000
    max_age_ms: int = DAY_MS
    tombstone_retention_ms: int = DAY_MS
    batch: int = 500

    def __post_init__(self) -> None:
        for name in ("max_length", "max_age_ms", "tombstone_retention_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer, not {value!r}"
                )
        if isinstance(self.batch, bool) or not isinstance(self.batch, int):
            raise ValueError(f"batch must be an integer, not {self.batch!r}")
        if not 1 <= self.batch <= 10_000:
            raise ValueError(f"batch must be between 1 and 10000, not {self.batch}")

    @property
    def keep(self) -> int:
        """How many of the newest events an automatic batch leaves unfolded."""
        return max(self.max_length - self.batch, 0)


#: The policy a MemoryStore uses unless told otherwise.
DEFAULT_POLICY = CompactionPolicy()

#: No automatic compaction; ``compact()`` still works with these retentions.
MANUAL_ONLY = CompactionPolicy(max_length=0, max_age_ms=0)


@dataclass(frozen=True)
class BatchOutcome:
    """What one ``compact.lua`` call did."""

    folded: int
    tombstones_removed: int
    pending: bool
    compacted_seq: int
    floor: int


def compact_batch(
    namespace: str, policy: CompactionPolicy, *, everything: bool
) -> Call[BatchOutcome]:
    """One compaction batch; ``everything`` folds up to the head of the log."""
    check_namespace(namespace)
    names = FeedKeys(namespace)

    def parse(reply: Any) -> BatchOutcome:
        folded, removed, pending, cseq, floor = (int(x) for x in reply)
        return BatchOutcome(folded, removed, pending == 1, cseq, floor)

    return Call(
        parse,
        script=scripts.load("compact"),
        keys=(names.meta, names.log, names.compaction_index, names.tombstones),
        args=(
            policy.batch,
            0 if everything else policy.keep,
            0 if everything else policy.max_age_ms,
            policy.tombstone_retention_ms,
        ),
    )


@dataclass(frozen=True)
class ReplayPage:
    """One page of the whole retained log, with the compaction state."""

    epoch: str
    seq: int
    compacted_seq: int
    compacted_id: str
    runs: int
    entries: list[Any]
    more: bool


def replay_page(
    namespace: str, *, after: str, upto: str, limit: int
) -> Call[ReplayPage]:
    """One page of raw log entries after the stream ID ``after`` up to ``upto``."""
    names = FeedKeys(namespace)

    def parse(reply: Any) -> ReplayPage:
        return ReplayPage(
            epoch=replies.text(reply[0]),
            seq=int(reply[1]),
            compacted_seq=int(reply[2]),
            compacted_id=replies.text(reply[3]),
            runs=int(reply[4]),
            entries=list(reply[5]),
            more=int(reply[6]) == 1,
        )

    return Call(
        parse,
        script=scripts.load("replay"),
        keys=(names.meta, names.log),
        args=(after, upto, limit),
    )


def fold(latest: dict[Any, Any], entries: Sequence[Any]) -> None:
    """Apply raw log entries, in order, to ``latest`` (key -> its put's entry).

    Every entry starts with its key and op (see put.lua), so a delete is told
    apart without decoding the rest; values stay undecoded until
    ``records_of`` decodes each key's last put, once.
    """
    for entry in entries:
        flat = entry[1]
        if isinstance(flat, dict):
            flat = [part for pair in flat.items() for part in pair]
        if flat[3] in (b"delete", "delete"):
            latest.pop(flat[1], None)
        else:
            latest[flat[1]] = (entry[0], flat)


def records_of(namespace: str, latest: dict[Any, Any]) -> dict[str, Record]:
    """The records, in key order, that folded put events describe."""
    records = {}
    for raw_key, (stream_id, flat) in latest.items():
        key = replies.text(raw_key)
        fields = replies.entry_fields((stream_id, flat))
        # The event's time is its stream ID's; only an update carries
        # "created", a create was created at its own time.
        ts = replies.event_time(replies.text(stream_id))
        created = fields.get("created")
        records[key] = Record(
            namespace=namespace,
            key=key,
            value=replies.json_value(fields["value"]),
            version=int(fields["version"]),
            created=ts if created is None else int(created),
            updated=ts,
        )
    return dict(sorted(records.items()))


def stats(namespace: str) -> Call[LogStats]:
    """The call that measures one namespace's log and records (``stats.lua``)."""
    check_namespace(namespace)
    names = FeedKeys(namespace)

    def parse(reply: Any) -> LogStats:
        memory = int(reply[7])
        return LogStats(
            namespace=namespace,
            epoch=replies.text(reply[0]),
            events=int(reply[4]),
            first_seq=int(reply[5]),
            last_seq=int(reply[1]),
            compacted_seq=int(reply[2]),
            floor=int(reply[3]),
            records=int(reply[6]),
            memory=None if memory < 0 else memory,
        )

    return Call(
        parse,
        script=scripts.load("stats"),
        keys=(
            names.meta,
            names.log,
            names.records,
            names.index,
            names.compaction_index,
            names.tombstones,
        ),
    )


#: Log entries per replay page.
REPLAY_PAGE = 1000
#: Replays started again when compaction changed the log under them.
REPLAY_ATTEMPTS = 5


class Replayer:
    """Sans-I/O replay: which page to read next, and the records folded so far.

    ``until`` is None (the head), a change-log token (the state just after
    that event) or a Redis time in ms (every event at or before it). If a
    compaction batch runs while the pages are read, replay starts over, since
    the compacted prefix it had read may have changed.
    """

    def __init__(self, namespace: str, until: str | int | None) -> None:
        check_namespace(namespace)
        self.namespace = namespace
        self._latest: dict[Any, Any] = {}
        self._position: LogPosition | None = None
        self._until_ms: int | None = None
        if until is None:
            self._upto = "+"
        elif isinstance(until, str):
            self._position = decode_log_token(until)
            self._upto = self._position.stream_id
        elif isinstance(until, int) and not isinstance(until, bool) and until >= 0:
            self._until_ms = until
            self._upto = str(until)
        else:
            raise ValueError(
                f"until must be a change-log token or a time in ms, not {until!r}"
            )
        self._after = ""
        self._runs: int | None = None
        self._attempts = 0
        self._done = False

    @property
    def records(self) -> dict[str, Record]:
        """The records folded so far, in key order."""
        return records_of(self.namespace, self._latest)

    def next_call(self) -> Call[ReplayPage] | None:
        """The next page to read, or None when the records are complete."""
        if self._done:
            return None
        return replay_page(
            self.namespace, after=self._after, upto=self._upto, limit=REPLAY_PAGE
        )

    def on_page(self, page: ReplayPage) -> None:
        """Fold one page, or start over if compaction ran meanwhile."""
        if self._runs is None:
            self._check(page)
            self._runs = page.runs
        elif page.runs != self._runs:
            self._start_over()
            return

        fold(self._latest, page.entries)
        if page.entries:
            self._after = replies.text(page.entries[-1][0])
        self._done = not page.more

    def _check(self, page: ReplayPage) -> None:
        """Refuse a point the log cannot rebuild."""
        point = self._position
        if point is not None and point.epoch != page.epoch:
            raise StaleToken(
                self.namespace, point.encode(), page.epoch, "the log has a new epoch"
            )
        if page.compacted_seq == 0:
            return
        compacted_ms = int(page.compacted_id.split("-", 1)[0])
        if point is not None and point.seq < page.compacted_seq:
            raise HistoryCompacted(
                self.namespace, point.encode(), page.epoch, page.compacted_seq
            )
        if self._until_ms is not None and self._until_ms < compacted_ms:
            raise HistoryCompacted(
                self.namespace,
                f"time {self._until_ms}",
                page.epoch,
                page.compacted_seq,
            )

    def _start_over(self) -> None:
        self._attempts += 1
        if self._attempts >= REPLAY_ATTEMPTS:
            raise ReplayInterrupted(self.namespace, self._attempts)
        self._latest.clear()
        self._after = ""
        self._runs = None
