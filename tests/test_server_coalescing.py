"""Coalescing subscriptions: a client that stops reading gets each key's
latest event, told how many older ones it replaced, instead of being evicted;
too many distinct keys still evict it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from redismem import MemoryStore
from redismem.tokens import decode_feed_token
from tests.realtime import ServerProcess, headers, recv_json

pytestmark = pytest.mark.anyio

#: Large values fill the kernel's socket buffers quickly.
VALUE = "x" * 8000
KEYS = 4


@pytest.fixture(params=["direct", "queued"])
def server(
    request: pytest.FixtureRequest, patient_realtime: ServerProcess, realtime_redis: Any
) -> Iterator[Any]:
    """The served process (uvicorn's sans-I/O WebSocket: direct writes), or an
    app on uvicorn's other WebSocket implementation (a queue per connection)."""
    if request.param == "direct":
        yield patient_realtime
        return
    from redismem.server import ServerConfig, create_app
    from redismem.server.auth import AuthConfig
    from tests.realtime import SECRET, ThreadedServer

    config = ServerConfig(
        url=realtime_redis.url,
        auth=AuthConfig(jwt_secret=SECRET),
        max_send_buffer=65536,
    )
    threaded = ThreadedServer(create_app(config), ws="websockets").start()
    yield threaded
    threaded.stop()


def sample(server: Any, name: str) -> float:
    for line in httpx.get(f"{server.http}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def stalled_socket(server: Any) -> socket.socket:
    """A client socket with a tiny receive buffer, for a peer that stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    return sock


async def subscribe_coalescing(ws: Any, pattern: str) -> dict[str, Any]:
    await ws.send(
        json.dumps({"type": "subscribe", "pattern": pattern, "coalesce": True})
    )
    ack = await recv_json(ws)
    assert ack["type"] == "subscribed"
    return ack


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # uvicorn's legacy ws
async def test_a_coalescing_client_that_stops_reading_gets_the_latest_of_every_key(
    server: Any, realtime_store: MemoryStore
) -> None:
    coalesced_before = sample(server, "redismem_events_coalesced_total")
    evicted_before = sample(server, "redismem_slow_consumers_evicted_total")
    async with websockets.connect(
        server.ws,
        sock=stalled_socket(server),
        additional_headers=headers(),
        max_queue=1,
    ) as ws:
        await subscribe_coalescing(ws, "hot")

        # The client reads nothing while a few keys are updated over and
        # over, until the server has replaced held events many times.
        total = 0
        while sample(server, "redismem_events_coalesced_total") < (
            coalesced_before + 200
        ):
            assert total < 8000, "never coalesced"
            realtime_store.put_many(
                [("hot", f"k{(total + i) % KEYS}", VALUE) for i in range(100)]
            )
            total += 100
        realtime_store.put_many([("hot", f"k{i}", "final") for i in range(KEYS)])
        total += KEYS

        frames = []
        latest: dict[str, Any] = {}
        while len(latest) < KEYS or any(v != "final" for v in latest.values()):
            frame = await recv_json(ws)
            frames.append(frame)
            latest[frame["key"]] = frame["value"]
        coalesced_after = sample(server, "redismem_events_coalesced_total")

    seqs = [frame["seq"] for frame in frames]
    superseded = sum(frame.get("coalesced", 0) for frame in frames)
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == total
    # Every event was either delivered or counted in a later one's "coalesced".
    assert len(frames) + superseded == total
    assert superseded >= 200
    assert coalesced_after - coalesced_before == superseded
    assert sample(server, "redismem_slow_consumers_evicted_total") == evicted_before
    log = {event.seq: event.token for event in realtime_store.changes("hot").items}
    assert all(
        frame["token"] == log[frame["seq"]] for frame in frames if frame["seq"] in log
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # uvicorn's legacy ws
async def test_a_coalescing_client_with_too_many_distinct_keys_is_evicted(
    server: Any, realtime_store: MemoryStore
) -> None:
    evicted_before = sample(server, "redismem_slow_consumers_evicted_total")
    credential = headers()
    async with websockets.connect(
        server.ws,
        sock=stalled_socket(server),
        additional_headers=credential,
        max_queue=1,
    ) as ws:
        # Where to resume from if no event gets through (null: the start).
        last_token = (await subscribe_coalescing(ws, "wide"))["positions"]["wide"]

        # Every write is a new key: nothing can be replaced, so the held
        # events outgrow their bound.
        total = 0
        while sample(server, "redismem_slow_consumers_evicted_total") == (
            evicted_before
        ):
            assert total < 4000, "never evicted"
            realtime_store.put_many(
                [("wide", f"k{total + i}", VALUE) for i in range(100)]
            )
            total += 100

        seqs = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await recv_json(ws)
                seqs.append(frame["seq"])
                last_token = frame["token"]

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    async with websockets.connect(server.ws, additional_headers=credential) as ws:
        resume = {"wide": last_token}
        await ws.send(
            json.dumps({"type": "subscribe", "pattern": "wide", "resume": resume})
        )
        assert (await recv_json(ws))["recovered"] is True
        while len(seqs) < total:
            seqs.append((await recv_json(ws))["seq"])

    assert seqs == list(range(1, total + 1))


@pytest.mark.parametrize("flag", ["yes", 1, None])
async def test_a_coalesce_flag_that_is_not_a_boolean_is_refused(
    realtime: ServerProcess, flag: Any
) -> None:
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "pattern": "hot", "coalesce": flag})
        )
        error = await recv_json(ws)
        await ws.send(json.dumps({"type": "unsubscribe", "pattern": "hot"}))
        still = await recv_json(ws)

    assert (error["type"], error["code"]) == ("error", "bad_message")
    assert still["code"] == "not_subscribed"  # the refused subscribe changed nothing


def test_an_sse_coalesce_parameter_that_is_not_0_or_1_is_refused(
    realtime: ServerProcess,
) -> None:
    response = httpx.get(
        f"{realtime.http}/sse",
        params={"pattern": "hot", "coalesce": "maybe"},
        headers=headers(),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_message"


class RawSseClient:
    """An SSE request on a plain socket, so the client can stop reading."""

    def __init__(self, server: ServerProcess, query: str) -> None:
        self.sock = stalled_socket(server)
        self.sock.settimeout(5)
        credential = headers()["Authorization"]
        self.sock.sendall(
            f"GET /sse?{query} HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: {credential}\r\n\r\n".encode()
        )
        self.raw = b""
        self.body = b""

    def messages(self) -> list[dict[str, str]]:
        """Read what has arrived; every complete SSE message so far."""
        self.raw += self.sock.recv(1 << 16)
        _, _, chunked = self.raw.partition(b"\r\n\r\n")
        self.body = b""
        # Chunked transfer coding: "<hex size>\r\n<bytes>\r\n", repeated.
        while b"\r\n" in chunked:
            size_line, _, rest = chunked.partition(b"\r\n")
            size = int(size_line, 16)
            if len(rest) < size + 2:
                break
            self.body += rest[:size]
            chunked = rest[size + 2 :]
        parsed = []
        for block in self.body.decode().split("\n\n")[:-1]:
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if ": " in line
            )
            parsed.append(fields)
        return parsed

    def close(self) -> None:
        self.sock.close()


async def test_a_coalescing_sse_stream_that_stops_reading_gets_the_latest_of_every_key(
    patient_realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    coalesced_before = sample(patient_realtime, "redismem_events_coalesced_total")
    client = RawSseClient(patient_realtime, "pattern=hs*&coalesce=1")
    try:
        while not any(m.get("event") == "subscribed" for m in client.messages()):
            pass
        total = 0
        while sample(patient_realtime, "redismem_events_coalesced_total") < (
            coalesced_before + 200
        ):
            assert total < 8000, "never coalesced"
            realtime_store.put_many(
                [("hs-a", f"k{(total + i) % KEYS}", VALUE) for i in range(100)]
            )
            total += 100
        realtime_store.put_many([("hs-a", f"k{i}", "final") for i in range(KEYS)])
        total += KEYS

        latest: dict[str, Any] = {}
        while len(latest) < KEYS or any(v != "final" for v in latest.values()):
            messages = client.messages()
            events = [m for m in messages if "event" not in m and "data" in m]
            for message in events:
                frame = json.loads(message["data"])
                latest[frame["key"]] = frame["value"]
    finally:
        client.close()

    frames = [json.loads(m["data"]) for m in events]
    seqs = [frame["seq"] for frame in frames]
    superseded = sum(frame.get("coalesced", 0) for frame in frames)
    assert seqs == sorted(set(seqs))
    assert len(frames) + superseded == total
    assert superseded >= 200
    # The wildcard stream's id resumes every namespace after the last event.
    final_id = decode_feed_token(events[-1]["id"])
    assert {ns: p.encode() for ns, p in final_id.items()} == {
        "hs-a": realtime_store.changes("hs-a", limit=1, reverse=True).items[0].token
    }


def test_metrics_export_coalesced_beside_every_other_delivery_and_refusal_counter(
    realtime: ServerProcess,
) -> None:
    exposition = httpx.get(f"{realtime.http}/metrics").text
    declared = {
        line.split()[2]: line.split()[3]
        for line in exposition.splitlines()
        if line.startswith("# TYPE ")
    }

    assert {
        "redismem_connections": "gauge",
        "redismem_subscriptions": "gauge",
        "redismem_events_delivered_total": "counter",
        "redismem_events_coalesced_total": "counter",
        "redismem_events_dropped_total": "counter",
        "redismem_slow_consumers_evicted_total": "counter",
        "redismem_resumes_total": "counter",
        "redismem_auth_failures_total": "counter",
        "redismem_rate_limited_total": "counter",
        "redismem_connections_refused_total": "counter",
        "redismem_pubsub_up": "gauge",
        "redismem_delivery_lag_seconds": "histogram",
    }.items() <= declared.items()
