"""The calls a subscription makes: history pages, heads, reset snapshots.

Nothing here does I/O; the sync and asyncio subscriptions run these calls
and hand the results to ``redismem.merge.FeedMerger``.
"""

from __future__ import annotations

from typing import Any

from redismem import replies, scripts
from redismem.keys import NamespaceKeys
from redismem.merge import HistoryPage, Snapshot
from redismem.scripts import Call
from redismem.tokens import LogPosition

#: Events per history page a subscription reads while catching up.
HISTORY_PAGE = 500

# Reply codes of changes.lua.
_OK, _STALE_EPOCH, _COMPACTED = 0, 1, 2


def history(namespace: str, position: LogPosition) -> Call[HistoryPage]:
    """One page of the log after ``position`` (any epoch when it has none)."""
    names = NamespaceKeys(namespace)

    def parse(reply: Any) -> HistoryPage:
        code, epoch = int(reply[0]), replies.text(reply[1])
        if code == _STALE_EPOCH:
            return HistoryPage(epoch, [], False, "the log has a new epoch")
        if code == _COMPACTED:
            return HistoryPage(
                epoch,
                [],
                False,
                f"events after seq {position.seq} were compacted away",
            )
        events = [replies.stream_event(namespace, epoch, entry) for entry in reply[2]]
        return HistoryPage(epoch, events, int(reply[3]) == 1)

    return Call(
        parse,
        script=scripts.load("changes"),
        keys=(names.meta, names.log),
        args=(
            position.stream_id,
            position.seq,
            position.epoch,
            HISTORY_PAGE,
            "asc",
            "",
            "",
            "",
            "",
            "",
            HISTORY_PAGE,
        ),
    )


def head(namespace: str) -> Call[LogPosition | None]:
    """The position of the log's last event; None when there is no log."""
    names = NamespaceKeys(namespace)

    def parse(reply: Any) -> LogPosition | None:
        epoch, seq, last = reply
        if epoch is None:
            return None
        last_id = "0-0" if last is None else replies.text(last)
        return LogPosition(replies.text(epoch), int(seq), last_id)

    return Call(parse, command=("HMGET", names.meta, "epoch", "seq", "last"))


def snapshot(namespace: str) -> Call[Snapshot]:
    """Every record of the namespace with the log position it reflects."""
    names = NamespaceKeys(namespace)

    def parse(reply: Any) -> Snapshot:
        flat = reply[3]
        if isinstance(flat, dict):
            pairs = list(flat.items())
        else:
            pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        records = sorted(
            (replies.record(namespace, replies.text(k), v) for k, v in pairs),
            key=lambda record: record.key,
        )
        return Snapshot(
            epoch=replies.text(reply[0]),
            seq=int(reply[1]),
            last_id=replies.text(reply[2]),
            records=records,
        )

    return Call(
        parse,
        script=scripts.load("reset"),
        keys=(names.records, names.meta),
    )
