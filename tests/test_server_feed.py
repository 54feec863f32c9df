"""Live events, resume and reset over WebSocket and SSE, with real clients."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets
from httpx_sse import connect_sse

from redismem import MemoryStore
from tests.realtime import ServerProcess, headers, recv_json, recv_until, subscribe

pytestmark = pytest.mark.anyio


async def events(ws: Any, count: int) -> list[dict[str, Any]]:
    received = []
    while len(received) < count:
        frame = await recv_json(ws)
        assert frame["type"] == "event", frame
        received.append(frame)
    return received


async def test_a_subscriber_receives_each_write_once_with_a_token(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "users")
        realtime_store.put("users", "alice", {"name": "Alice"})
        realtime_store.put("other", "x", 1)
        realtime_store.delete("users", "alice")
        received = await events(ws, 2)

    assert ack == {
        "type": "subscribed",
        "pattern": "users",
        "recovered": False,
        "positions": {"users": None},
    }
    assert [(e["ns"], e["key"], e["op"], e["seq"]) for e in received] == [
        ("users", "alice", "create", 1),
        ("users", "alice", "delete", 2),
    ]
    assert received[0]["value"] == {"name": "Alice"}
    assert received[1]["value"] is None
    log = realtime_store.changes("users").items
    assert [e["token"] for e in received] == [event.token for event in log]


async def test_overlapping_subscriptions_deliver_an_event_once(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        await subscribe(ws, "users")
        await subscribe(ws, "us*")
        realtime_store.put("users", "a", 1)
        realtime_store.put("usage", "b", 2)
        frames = [await recv_json(ws) for _ in range(2)]
        # Live events may come after a pong: ping only once both are here.
        await ws.send(json.dumps({"type": "ping"}))
        frames.append(await recv_json(ws))

    assert [(f["type"], f.get("ns")) for f in frames] == [
        ("event", "users"),
        ("event", "usage"),
        ("pong", None),
    ]


async def test_resuming_from_a_token_replays_missed_events_without_gaps_or_duplicates(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    for i in range(5):
        realtime_store.put("notes", f"k{i}", i)
    resume_from = realtime_store.changes("notes", limit=2).items[-1].token

    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "notes", resume_from)
        replayed = await events(ws, 3)
        realtime_store.put("notes", "k5", 5)
        live = await events(ws, 1)

    assert ack["recovered"] is True
    assert [e["seq"] for e in replayed + live] == [3, 4, 5, 6]


async def test_a_token_of_another_epoch_gets_a_reset_with_the_records_then_live_events(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("notes", "old", 1)
    stale = realtime_store.changes("notes").items[-1].token
    realtime_store.client.flushall()
    realtime_store.put("notes", "a", "A")
    realtime_store.put("notes", "b", "B")

    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        ack = await subscribe(ws, "notes", stale)
        reset = await recv_json(ws)
        realtime_store.put("notes", "c", "C")
        live = await events(ws, 1)

    assert ack["recovered"] is False
    assert ack["positions"] == {"notes": None}
    assert reset["type"] == "reset"
    assert [(r["key"], r["value"]) for r in reset["records"]] == [
        ("a", "A"),
        ("b", "B"),
    ]
    head = realtime_store.changes("notes").items[1].token
    assert reset["token"] == head
    assert live[0]["key"] == "c"
    assert live[0]["seq"] == 3


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_message"),
        ('{"type": "launch"}', "bad_message"),
        ('{"type": "subscribe", "pattern": "bad name"}', "invalid_pattern"),
        ('{"type": "subscribe", "pattern": "a{b}"}', "invalid_pattern"),
        (
            '{"type": "subscribe", "pattern": "notes", "resume": "nope"}',
            "invalid_token",
        ),
        (
            '{"type": "subscribe", "pattern": "n*", "resume": "1.1.1-0"}',
            "invalid_token",
        ),
        ('{"type": "unsubscribe", "pattern": "notes"}', "not_subscribed"),
    ],
)
async def test_a_bad_message_gets_an_error_code_and_the_connection_lives_on(
    realtime: ServerProcess, message: str, code: str
) -> None:
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        await ws.send(message)
        error = await recv_json(ws)
        await ws.send(json.dumps({"type": "ping"}))
        pong = await recv_json(ws)

    assert (error["type"], error["code"]) == ("error", code)
    assert pong == {"type": "pong"}


async def test_after_unsubscribing_no_more_events_arrive(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        await subscribe(ws, "a")
        await subscribe(ws, "b")
        await ws.send(json.dumps({"type": "unsubscribe", "pattern": "a"}))
        assert (await recv_json(ws))["type"] == "unsubscribed"
        realtime_store.put("a", "k", 1)
        realtime_store.put("b", "k", 1)
        frame = await recv_until(ws, "event")

    assert frame["ns"] == "b"


def sse_events(
    server: ServerProcess, pattern: str, count: int, **kwargs: Any
) -> list[Any]:
    received = []
    with (
        httpx.Client(timeout=5) as client,
        connect_sse(
            client, "GET", f"{server.http}/sse", params={"pattern": pattern}, **kwargs
        ) as source,
    ):
        for sse in source.iter_sse():
            received.append(sse)
            if sum(1 for e in received if e.event == "message") >= count:
                break
    return received


def test_sse_resumes_from_last_event_id_without_gaps(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    for i in range(3):
        realtime_store.put("feed", f"k{i}", i)

    first = sse_events(realtime, "feed", 0, headers=headers())  # the ack only
    realtime_store.put("feed", "k3", 3)
    log = realtime_store.changes("feed").items
    last_id = f"feed {log[1].token}"
    resumed = sse_events(
        realtime, "feed", 2, headers={**headers(), "Last-Event-ID": last_id}
    )

    assert first[0].event == "subscribed"
    assert resumed[0].event == "subscribed"
    assert json.loads(resumed[0].data)["recovered"] is True
    changes = [e for e in resumed if e.event == "message"]
    assert [json.loads(e.data)["seq"] for e in changes] == [3, 4]
    assert [e.id for e in changes] == [f"feed {event.token}" for event in log[2:]]
    assert resumed[0].retry is None or resumed[0].retry > 0


def test_sse_stream_opens_with_retry_advice_and_sends_keep_alives(
    realtime: ServerProcess,
) -> None:
    with (
        httpx.Client(timeout=5) as client,
        client.stream(
            "GET",
            f"{realtime.http}/sse",
            params={"pattern": "quiet"},
            headers=headers(),
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if ": keep-alive" in text:
                break

    assert text.startswith("retry: ")
    assert "event: subscribed" in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # uvicorn's legacy ws
async def test_under_another_websocket_implementation_events_flow_through_a_queue(
    realtime_redis: Any, realtime_store: MemoryStore
) -> None:
    from redismem.server import ServerConfig, create_app
    from redismem.server.auth import AuthConfig
    from tests.realtime import SECRET, ThreadedServer

    app = create_app(
        ServerConfig(url=realtime_redis.url, auth=AuthConfig(jwt_secret=SECRET))
    )
    server = ThreadedServer(app, ws="websockets").start()  # not the sans-I/O one
    try:
        realtime_store.put("q", "a", 1)
        first = realtime_store.changes("q").items[0].token
        realtime_store.put("q", "b", 2)
        async with websockets.connect(server.ws, additional_headers=headers()) as ws:
            ack = await subscribe(ws, "q", first)
            replayed = await events(ws, 1)
            realtime_store.put("q", "c", 3)
            live = await events(ws, 1)
    finally:
        server.stop()

    assert ack["recovered"] is True
    assert [e["seq"] for e in replayed + live] == [2, 3]
