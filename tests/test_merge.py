"""The sans-I/O merger on its own: any interleaving of lost, repeated and
late live messages with history reads yields each event once, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from redismem.merge import START, HistoryPage, NamespaceFeed, Need
from redismem.models import ChangeEvent
from redismem.tokens import LogPosition

EPOCH = "1700000000000000"


def event(seq: int) -> ChangeEvent:
    stream_id = f"{1000 + seq}-0"
    token = LogPosition(EPOCH, seq, stream_id).encode()
    return ChangeEvent(
        "ns", "k", "update", seq, seq, 1000 + seq, seq, EPOCH, stream_id, token
    )


def history_after(
    position: LogPosition, log: list[ChangeEvent], size: int
) -> HistoryPage:
    """What changes.lua returns: the events after the position's stream ID."""
    after = [
        e
        for e in log
        if int(e.id.split("-")[0]) > int(position.stream_id.split("-")[0])
    ]
    return HistoryPage(EPOCH, after[:size], len(after) > size)


@given(
    total=st.integers(1, 60),
    start_at=st.integers(0, 10),
    data=st.data(),
)
def test_any_interleaving_yields_every_event_once_in_order(
    total: int, start_at: int, data: st.DataObject
) -> None:
    log = [event(seq) for seq in range(1, total + 1)]
    start_at = min(start_at, total)
    position = (
        START if start_at == 0 else LogPosition(EPOCH, start_at, log[start_at - 1].id)
    )
    feed = NamespaceFeed(
        "ns", position, Need.HISTORY if start_at == 0 else Need.NOTHING
    )

    # Live messages from after the start: some lost, some repeated.
    live: list[ChangeEvent] = []
    for e in log[start_at:]:
        copies = data.draw(st.sampled_from([0, 1, 1, 1, 2]), label=f"copies of {e.seq}")
        live += [e] * copies

    out: list[ChangeEvent] = []
    for _ in range(10 * (total + 5)):
        if feed.need is Need.RESET:
            raise AssertionError(f"reset asked on an intact log: {feed.reset_reason}")
        read_history = feed.need is Need.HISTORY and data.draw(
            st.booleans(), label="read"
        )
        if read_history or (feed.need is Need.HISTORY and not live):
            size = data.draw(st.integers(1, 7), label="page size")
            out += feed.on_history(history_after(feed.position, log, size))
        elif live:
            out += feed.on_live(live.pop(0))
        elif feed.position.seq < total:
            feed.catch_up()  # what a reconnect does: the tail was lost
        else:
            break

    assert [e.seq for e in out] == list(range(start_at + 1, total + 1))
