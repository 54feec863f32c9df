"""Wildcard subscriptions resume every namespace they match, over WebSocket
and SSE: a namespace the client holds no token for is replayed from the start
of its log, never skipped."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from httpx_sse import connect_sse

from redismem import MemoryStore
from redismem.tokens import decode_feed_token, decode_log_token, encode_feed_token
from tests.realtime import ServerProcess, headers, recv_json, subscribe

pytestmark = pytest.mark.anyio


async def live_frames(ws: Any, count: int) -> list[dict[str, Any]]:
    """``count`` frames, then every frame before the answer to a ping."""
    received = [await recv_json(ws) for _ in range(count)]
    return received + await frames_until_pong(ws)


async def frames_until_pong(ws: Any) -> list[dict[str, Any]]:
    """Every frame before the answer to a ping sent now.

    The server answers a ping only after the commands before it are done,
    so this collects everything a subscribe replayed.
    """
    await ws.send(json.dumps({"type": "ping"}))
    received = []
    while (frame := await recv_json(ws))["type"] != "pong":
        received.append(frame)
    return received


def seqs_by_namespace(frames: list[dict[str, Any]]) -> dict[str, list[int]]:
    by_namespace: dict[str, list[int]] = {}
    for frame in frames:
        assert frame["type"] == "event", frame
        by_namespace.setdefault(frame["ns"], []).append(frame["seq"])
    return by_namespace


def log_tokens(store: MemoryStore, namespace: str) -> list[str]:
    return [event.token for event in store.changes(namespace).items]


async def test_a_live_wildcard_subscription_acknowledges_the_head_of_every_namespace(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("ack-a", "k", 1)
    realtime_store.put("ack-a", "k", 2)
    realtime_store.put("ack-b", "k", 1)
    realtime_store.put("other", "k", 1)

    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "ack-*")
        realtime_store.put("ack-b", "k", 2)
        live = await live_frames(ws, 1)

    assert ack["recovered"] is False
    assert ack["positions"] == {
        "ack-a": log_tokens(realtime_store, "ack-a")[-1],
        "ack-b": log_tokens(realtime_store, "ack-b")[0],
    }
    assert [(f["ns"], f["seq"]) for f in live] == [("ack-b", 2)]


async def test_a_wildcard_resume_replays_new_and_untracked_namespaces_from_the_start(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("gr-a", "k", 0)
    realtime_store.put("gr-c", "k", 0)  # exists, but the client keeps no token
    credential = headers()
    async with websockets.connect(realtime.ws, additional_headers=credential) as ws:
        await subscribe(ws, "gr-*")
        realtime_store.put("gr-a", "k", 1)
        seen = await live_frames(ws, 1)
    last_a = seen[-1]["token"]

    # While the client is away: more of A, a NEW namespace B, more of C.
    realtime_store.put("gr-a", "k", 2)
    realtime_store.put("gr-b", "x", 1)
    realtime_store.put("gr-a", "j", 3)
    realtime_store.put("gr-b", "x", 2)
    realtime_store.put("gr-c", "k", 1)

    async with websockets.connect(realtime.ws, additional_headers=credential) as ws:
        ack = await subscribe(ws, "gr-*", {"gr-a": last_a})
        replayed = await frames_until_pong(ws)
        realtime_store.put("gr-a", "k", 4)
        realtime_store.put("gr-b", "x", 3)
        realtime_store.put("gr-c", "k", 2)
        live = await live_frames(ws, 3)

    assert [(f["ns"], f["seq"]) for f in seen] == [("gr-a", 2)]
    assert ack["recovered"] is True
    assert ack["positions"] == {"gr-a": last_a, "gr-b": None, "gr-c": None}
    assert seqs_by_namespace(replayed) == {
        "gr-a": [3, 4],
        "gr-b": [1, 2],
        "gr-c": [1, 2],
    }
    assert seqs_by_namespace(live) == {"gr-a": [5], "gr-b": [3], "gr-c": [3]}
    for namespace in ("gr-a", "gr-b", "gr-c"):
        delivered = [f["token"] for f in replayed + live if f["ns"] == namespace]
        assert delivered == log_tokens(realtime_store, namespace)[-len(delivered) :]


async def test_a_null_position_resumes_from_the_start_of_the_log(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    for i in range(3):
        realtime_store.put("nul-a", f"k{i}", i)
    realtime_store.put("nul-b", "k", 1)
    last_b = log_tokens(realtime_store, "nul-b")[-1]

    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "nul-*", {"nul-a": None, "nul-b": last_b})
        replayed = await frames_until_pong(ws)
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        exact_ack = await subscribe(ws, "nul-a", {"nul-a": None})
        exact = await frames_until_pong(ws)

    assert ack["recovered"] is True
    assert ack["positions"] == {"nul-a": None, "nul-b": last_b}
    assert seqs_by_namespace(replayed) == {"nul-a": [1, 2, 3]}
    assert exact_ack["recovered"] is True
    assert seqs_by_namespace(exact) == {"nul-a": [1, 2, 3]}


@pytest.mark.parametrize("written_after", [0, 1])
async def test_a_namespace_left_out_whose_start_was_compacted_gets_a_reset(
    realtime: ServerProcess, realtime_store: MemoryStore, written_after: int
) -> None:
    realtime_store.put("cmp-a", "k", 1)
    last_a = log_tokens(realtime_store, "cmp-a")[-1]
    for version in range(3):
        realtime_store.put("cmp-b", "k", version)
    realtime_store.put("cmp-b", "j", "J")
    realtime_store.compact("cmp-b")
    for _ in range(written_after):
        realtime_store.put("cmp-b", "j", "J2")
    # Reading from the start now begins after the compacted events.
    assert [e.seq for e in realtime_store.changes("cmp-b").items] == [
        5 for _ in range(written_after)
    ]

    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "cmp-*", {"cmp-a": last_a})
        frames = await frames_until_pong(ws)

    assert ack["recovered"] is False
    assert ack["positions"] == {"cmp-a": last_a, "cmp-b": None}
    assert [f["type"] for f in frames] == ["reset"]
    reset = frames[0]
    assert reset["ns"] == "cmp-b"
    assert sorted((r["key"], r["value"]) for r in reset["records"]) == [
        ("j", "J2" if written_after else "J"),
        ("k", 2),
    ]
    assert decode_log_token(reset["token"]).seq == 4 + written_after


def sse_messages(
    server: ServerProcess,
    pattern: str,
    count: int,
    *,
    then: Callable[[], None] | None = None,
    more: int = 0,
    **kwargs: Any,
) -> list[Any]:
    """The SSE messages of a stream (acknowledgement first) until ``count``
    change events arrived; then, if given, ``then()`` runs and ``more``
    events are read from the same stream."""
    received = []
    with (
        httpx.Client(timeout=5) as client,
        connect_sse(
            client, "GET", f"{server.http}/sse", params={"pattern": pattern}, **kwargs
        ) as source,
    ):
        for sse in source.iter_sse():
            received.append(sse)
            events = sum(1 for e in received if e.event == "message")
            if events == count and then is not None:
                then()
            if events >= count + more:
                break
    return received


def feed_tokens(event_id: str) -> dict[str, str]:
    """The per-namespace tokens of a wildcard stream's ``id:``."""
    positions = decode_feed_token(event_id)
    return {namespace: position.encode() for namespace, position in positions.items()}


def test_a_wildcard_sse_stream_resumes_every_namespace_from_last_event_id(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("sg-a", "k", 0)
    realtime_store.put("sg-c", "k", 0)
    credential = headers()

    quiet = sse_messages(realtime, "sg-*", 0, headers=credential)
    realtime_store.put("sg-a", "k", 1)
    first = sse_messages(
        realtime, "sg-*", 1, headers={**credential, "Last-Event-ID": quiet[-1].id}
    )
    last_id = first[-1].id

    realtime_store.put("sg-a", "k", 2)
    realtime_store.put("sg-b", "x", 1)  # a namespace created meanwhile
    realtime_store.put("sg-c", "k", 1)
    realtime_store.put("sg-b", "x", 2)

    def write_live() -> None:
        for namespace in ("sg-a", "sg-b", "sg-c"):
            realtime_store.put(namespace, "live", True)

    resumed = sse_messages(
        realtime,
        "sg-*",
        4,
        then=write_live,
        more=3,
        headers={**credential, "Last-Event-ID": last_id},
    )

    heads = {ns: log_tokens(realtime_store, ns)[0] for ns in ("sg-a", "sg-c")}
    # Even a stream that saw no event carries an id that resumes it.
    assert quiet[0].event == "subscribed"
    assert feed_tokens(quiet[0].id) == heads
    assert [json.loads(e.data)["seq"] for e in first[1:]] == [2]
    assert json.loads(resumed[0].data)["recovered"] is True
    changes = [json.loads(e.data) for e in resumed if e.event == "message"]
    assert seqs_by_namespace(changes[:4]) == {
        "sg-a": [3],
        "sg-b": [1, 2],
        "sg-c": [2],
    }
    assert seqs_by_namespace(changes[4:]) == {"sg-a": [4], "sg-b": [3], "sg-c": [3]}
    assert feed_tokens(resumed[-1].id) == {
        ns: log_tokens(realtime_store, ns)[-1] for ns in ("sg-a", "sg-b", "sg-c")
    }


def test_a_wildcard_sse_stream_accepts_an_old_style_last_event_id(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("so-a", "k", 1)
    realtime_store.put("so-a", "k", 2)
    realtime_store.put("so-b", "k", 1)
    old_style = f"so-a {log_tokens(realtime_store, 'so-a')[0]}"

    resumed = sse_messages(
        realtime, "so-*", 2, headers={**headers(), "Last-Event-ID": old_style}
    )

    changes = [json.loads(e.data) for e in resumed if e.event == "message"]
    assert seqs_by_namespace(changes) == {"so-a": [2], "so-b": [1]}


@pytest.mark.parametrize(
    "last_event_id", ["garbage", encode_feed_token({}) + "!", "so-a nope"]
)
def test_a_bad_last_event_id_is_refused_with_invalid_token(
    realtime: ServerProcess, last_event_id: str
) -> None:
    response = httpx.get(
        f"{realtime.http}/sse",
        params={"pattern": "so-*"},
        headers={**headers(), "Last-Event-ID": last_event_id},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_token"


async def test_a_pattern_listened_to_again_after_everyone_left_reports_no_false_gap(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    # Writes go on all along, also while the server stops listening and
    # after: the last messages of a listen arrive when nobody wants them any
    # more, and later ones are never heard.
    stop = threading.Event()
    writer = threading.Thread(target=write_until, args=(realtime_store, stop))
    writer.start()
    received = []
    try:
        for round_ in range(10):
            async with websockets.connect(
                realtime.ws, additional_headers=headers()
            ) as ws:
                await subscribe(ws, "rl-*")
                realtime_store.put("rl-b", "k", round_)
                received.append(await recv_until_namespace(ws, "rl-b"))
            deadline = time.monotonic() + 5
            while realtime_store.client.execute_command("PUBSUB", "NUMPAT") != 0:
                assert time.monotonic() < deadline, "the server kept listening"
                time.sleep(0.001)
    finally:
        stop.set()
        writer.join()

    # A position left by those late messages would make the next live event
    # of rl-a look like a gap, and the connection would be closed with 4001.
    assert [(f["type"], f["value"]) for f in received] == [
        ("event", round_) for round_ in range(10)
    ]


def write_until(store: MemoryStore, stop: threading.Event) -> None:
    while not stop.wait(0.001):  # a steady stream, not a flood
        store.put_many([("rl-a", "k", n) for n in range(5)])


async def recv_until_namespace(ws: Any, namespace: str) -> dict[str, Any]:
    while (frame := await recv_json(ws))["ns"] != namespace:
        assert frame["type"] == "event", frame
    return frame


def test_an_exact_sse_stream_that_saw_nothing_resumes_a_namespace_created_meanwhile(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    credential = headers()
    quiet = sse_messages(realtime, "born", 0, headers=credential)
    realtime_store.put("born", "k", 1)
    realtime_store.put("born", "k", 2)

    resumed = sse_messages(
        realtime, "born", 2, headers={**credential, "Last-Event-ID": quiet[0].id}
    )

    assert json.loads(quiet[0].data)["positions"] == {"born": None}
    assert json.loads(resumed[0].data)["recovered"] is True
    changes = [json.loads(e.data) for e in resumed if e.event == "message"]
    assert [e["seq"] for e in changes] == [1, 2]
    assert [e.id for e in resumed[1:]] == [
        f"born {token}" for token in log_tokens(realtime_store, "born")
    ]
