"""The sans-I/O merge of history and live events, and the stream sequencer."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from redismem.server.events import OutgoingEvent
from redismem.server.patterns import parse_pattern
from redismem.server.recovery import Merger, Outcome, Sequencer, Verdict
from redismem.tokens import LogPosition


def event(seq: int, epoch: str = "100", namespace: str = "ns") -> OutgoingEvent:
    raw = orjson.dumps(
        {
            "ns": namespace,
            "key": "k",
            "op": "update",
            "version": seq,
            "seq": seq,
            "ts": 1,
            "epoch": epoch,
            "id": f"{seq}-0",
            "value": seq,
        }
    )
    return OutgoingEvent.from_published(raw)


def position(seq: int, epoch: str = "100") -> LogPosition:
    return LogPosition(epoch, seq, f"{seq}-0")


def test_history_and_an_overlapping_live_buffer_merge_into_one_gapless_run() -> None:
    merger = Merger("ns", position(2))
    for seq in (4, 5, 6):
        merger.offer_live(event(seq))

    from_history = merger.take_history([event(s) for s in (3, 4)])
    drained, outcome = merger.drain()

    assert [e.seq for e in from_history + drained] == [3, 4, 5, 6]
    assert outcome is Outcome.DONE
    assert merger.position == position(6)


def test_a_gap_between_history_and_the_buffer_asks_for_more_history() -> None:
    merger = Merger("ns", position(2))
    for seq in (5, 6):
        merger.offer_live(event(seq))

    merger.take_history([event(3)])
    drained, outcome = merger.drain()

    assert drained == []
    assert outcome is Outcome.NEED_HISTORY
    assert merger.position == position(3)
    merger.take_history([event(4)])
    drained, outcome = merger.drain()
    assert [e.seq for e in drained] == [5, 6]
    assert outcome is Outcome.DONE


def test_a_live_event_of_another_epoch_asks_for_a_reset() -> None:
    merger = Merger("ns", position(7))
    merger.offer_live(event(8))
    merger.offer_live(event(1, epoch="200"))

    drained, outcome = merger.drain()

    assert [e.seq for e in drained] == [8]
    assert outcome is Outcome.STALE
    merger.rebase(position(1, epoch="200"))
    assert merger.drain() == ([], Outcome.DONE)


def test_a_namespace_without_a_log_accepts_only_a_first_event() -> None:
    merger = Merger("ns", None)
    merger.offer_live(event(2))
    assert merger.drain() == ([], Outcome.NEED_HISTORY)

    merger.take_history([event(1)])
    drained, outcome = merger.drain()
    assert [e.seq for e in drained] == [2]
    assert outcome is Outcome.DONE


def test_history_that_starts_past_the_next_event_is_reported_as_missed() -> None:
    from_start = Merger("ns", None)
    after_two = Merger("ns", position(2))

    assert from_start.misses([event(3), event(4)]) is True  # compacted start
    assert from_start.misses([event(1), event(2)]) is False
    assert from_start.misses([]) is False
    assert after_two.misses([event(1), event(2), event(3)]) is False
    assert after_two.misses([event(2), event(4)]) is True

    # Delivery stops at the hole: nothing after it may go out.
    delivered = after_two.take_history([event(3), event(5), event(6)])
    assert [e.seq for e in delivered] == [3]
    assert after_two.position == position(3)


@given(
    start=st.integers(0, 20),
    history_end=st.integers(0, 40),
    live_start=st.integers(1, 40),
    live_end=st.integers(0, 60),
)
def test_any_overlap_of_history_and_live_yields_each_event_once_in_order(
    start: int, history_end: int, live_start: int, live_end: int
) -> None:
    # History covers (start, history_end]; the live buffer holds
    # [live_start, live_end]; the log is contiguous from 1 to the end.
    merger = Merger("ns", position(start) if start else None)
    for seq in range(live_start, live_end + 1):
        merger.offer_live(event(seq))
    delivered = merger.take_history([event(s) for s in range(1, history_end + 1)])

    while True:
        drained, outcome = merger.drain()
        delivered += drained
        if outcome is Outcome.DONE:
            break
        assert outcome is Outcome.NEED_HISTORY
        after = merger.position.seq if merger.position else 0
        delivered += merger.take_history([event(after + 1)])

    newest_live = live_end if live_end >= live_start else 0
    last = max(start, history_end, newest_live)
    assert [e.seq for e in delivered] == list(range(start + 1, last + 1))


def test_the_sequencer_drops_duplicates_and_reports_gaps_and_new_epochs() -> None:
    sequencer = Sequencer()

    verdicts = [sequencer.check(event(seq)) for seq in (1, 2, 2, 1, 3, 5)]
    new_epoch = sequencer.check(event(1, epoch="200"))

    assert verdicts == [
        Verdict.DELIVER,
        Verdict.DELIVER,
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
        Verdict.DELIVER,
        Verdict.BROKEN,
    ]
    assert new_epoch is Verdict.BROKEN


def test_the_sequencer_forgets_namespaces_of_a_pattern_nobody_listens_to() -> None:
    sequencer = Sequencer()
    sequencer.check(event(1, namespace="users:1"))
    sequencer.check(event(1, namespace="orders"))

    sequencer.forget(parse_pattern("users:*").matches)

    assert sequencer.check(event(9, namespace="users:1")) is Verdict.DELIVER
    assert sequencer.check(event(9, namespace="orders")) is Verdict.BROKEN


def test_patterns_cover_only_what_they_match() -> None:
    tenant = parse_pattern("tenant-a/*")

    assert tenant.covers(parse_pattern("tenant-a/notes"))
    assert tenant.covers(parse_pattern("tenant-a/n*"))
    assert not tenant.covers(parse_pattern("tenant-*"))
    assert not tenant.covers(parse_pattern("*"))
    assert not parse_pattern("notes").covers(parse_pattern("notes*"))
    assert parse_pattern("*").covers(tenant)
    assert tenant.channel == "rm:ch:tenant-a/*"
