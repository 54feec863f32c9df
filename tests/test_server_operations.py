"""Operating the server: HTTP API, heartbeats, backpressure, health, metrics,
graceful shutdown, and clients moving between instances."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from redismem import MemoryStore
from redismem.connection import connect
from tests.realtime import ServerProcess, headers, recv_json
from tests.servers import RedisClusterServers, RedisServer

pytestmark = pytest.mark.anyio


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_http_api_writes_reads_lists_deletes_and_pages_the_change_log(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    api = f"{realtime.http}/v1/namespaces/team%2Fa"
    with httpx.Client(headers=headers()) as http:
        created = http.put(f"{api}/records/k%2F1", json={"value": {"n": 1}})
        updated = http.put(
            f"{api}/records/k%2F1", json={"value": {"n": 2}, "expect_version": 1}
        )
        conflict = http.put(
            f"{api}/records/k%2F1", json={"value": 3, "expect_version": 1}
        )
        exists = http.put(f"{api}/records/k%2F1", json={"value": 3, "mode": "create"})
        http.put(f"{api}/records/k2", json={"value": None})
        read = http.get(f"{api}/records/k%2F1")
        listed = http.get(f"{api}/records", params={"limit": 1})
        deleted = http.delete(f"{api}/records/k2")
        missing = http.get(f"{api}/records/k2")
        first = http.get(f"{api}/changes", params={"limit": 2})
        rest = http.get(f"{api}/changes", params={"after": first.json()["next"]})
        bad_token = http.get(f"{api}/changes", params={"after": "garbage"})
        bad_ns = http.get(f"{realtime.http}/v1/namespaces/bad%20ns/records")

    assert (created.status_code, created.json()["version"]) == (201, 1)
    assert (updated.status_code, updated.json()["value"]) == (200, {"n": 2})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == {
        "code": "version_conflict",
        "message": conflict.json()["error"]["message"],
        "expected": 1,
        "actual": 2,
    }
    assert exists.json()["error"]["code"] == "record_exists"
    assert read.json()["key"] == "k/1" and read.json()["version"] == 2
    assert [r["key"] for r in listed.json()["items"]] == ["k/1"]
    assert listed.json()["next"] == "k/1"
    assert deleted.json() == {"deleted": True}
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "record_not_found"
    ops = [e["op"] for e in first.json()["items"] + rest.json()["items"]]
    assert ops == ["create", "update", "create", "delete"]
    assert [e.token for e in realtime_store.changes("team/a").items] == [
        e["token"] for e in first.json()["items"] + rest.json()["items"]
    ]
    assert bad_token.json()["error"]["code"] == "invalid_token"
    assert bad_ns.json()["error"]["code"] == "invalid_namespace"
    assert realtime_store.get("team/a", "k/1").version == 2  # type: ignore[union-attr]


def test_a_stale_token_on_the_change_log_answers_410_with_the_epoch(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("log", "k", 1)
    stale = realtime_store.changes("log").items[0].token
    realtime_store.client.flushall()
    realtime_store.put("log", "k", 2)

    answer = httpx.get(
        f"{realtime.http}/v1/namespaces/log/changes",
        params={"after": stale},
        headers=headers(),
    )

    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "stale_token"
    assert (
        answer.json()["error"]["epoch"] == realtime_store.changes("log").items[0].epoch
    )


def test_a_peer_that_stops_answering_pings_is_closed_by_the_heartbeat(
    realtime: ServerProcess,
) -> None:
    credential = headers()["Authorization"]
    with socket.create_connection(("127.0.0.1", realtime.port)) as sock:
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: {credential}\r\n\r\n"
            ).encode()
        )
        sock.settimeout(5)
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):  # never answers: a dead peer
            received += chunk
        elapsed = time.monotonic() - started

    assert b" 101 " in received
    frames = _frames(received.split(b"\r\n\r\n", 1)[1])
    assert frames[0][0] == 0x89  # a ping went out
    opcode, payload = frames[-1]
    assert opcode == 0x88
    assert int.from_bytes(payload[:2], "big") == 1011
    assert elapsed < 3  # interval 0.5 s + timeout 0.5 s, with slack


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(first byte, payload) of each unmasked server frame (all short here)."""
    frames = []
    while data:
        length = data[1] & 0x7F
        assert length < 126
        frames.append((data[0], data[2 : 2 + length]))
        data = data[2 + length :]
    return frames


async def test_a_client_that_stops_reading_is_evicted_with_resume_and_loses_nothing(
    patient_realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime = patient_realtime
    value = "x" * 8000
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", realtime.port))
    credential = headers()
    evicted_before = _evictions(realtime)
    async with websockets.connect(
        realtime.ws, sock=sock, additional_headers=credential, max_queue=1
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "pattern": "slow"}))
        assert (await recv_json(ws))["type"] == "subscribed"

        # The client reads nothing while writes pile up, until the server
        # has evicted it (kernel buffers absorb the first megabytes).
        total = 0
        while _evictions(realtime) == evicted_before:
            assert total < 4000, "never evicted"
            realtime_store.put_many(
                [("slow", f"k{total + i}", value) for i in range(100)]
            )
            total += 100

        seqs = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await recv_json(ws)
                seqs.append(frame["seq"])
                last_token = frame["token"]

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert 0 < len(seqs) < total
    async with websockets.connect(realtime.ws, additional_headers=credential) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "pattern": "slow", "resume": last_token})
        )
        assert (await recv_json(ws))["recovered"] is True
        while seqs[-1] < total:
            seqs.append((await recv_json(ws))["seq"])

    assert seqs == list(range(1, total + 1))


def _evictions(server: ServerProcess) -> float:
    metrics = httpx.get(f"{server.http}/metrics").text
    return _sample(metrics, "redismem_slow_consumers_evicted_total")


def _sample(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_count_connections_deliveries_resumes_and_auth_failures(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("m", "a", 1)
    token_a = realtime_store.changes("m").items[0].token
    httpx.get(f"{realtime.http}/v1/namespaces/m/records")  # no credentials
    async with websockets.connect(realtime.ws, additional_headers=headers()) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "pattern": "m", "resume": token_a})
        )
        await recv_json(ws)
        realtime_store.put("m", "b", 2)
        await recv_json(ws)
        metrics = httpx.get(f"{realtime.http}/metrics").text

    assert 'redismem_connections{transport="ws"}' in metrics
    assert _sample(metrics, 'redismem_connections{transport="ws"}') >= 1
    assert _sample(metrics, "redismem_events_delivered_total") >= 1
    assert _sample(metrics, 'redismem_resumes_total{outcome="recovered"}') >= 1
    assert _sample(metrics, 'redismem_auth_failures_total{code="auth_missing"}') >= 1
    assert _sample(metrics, "redismem_delivery_lag_seconds_count") >= 1
    assert _sample(metrics, "redismem_pubsub_up") == 1


async def test_healthz_is_unhealthy_while_redis_is_down_and_clients_are_told_to_resume(
    server_factory: Any, tmp_path: Any
) -> None:
    redis_server: RedisServer = server_factory()
    server = ServerProcess(redis_server.url, tmp_path).start()
    try:
        async with websockets.connect(server.ws, additional_headers=headers()) as ws:
            await ws.send(json.dumps({"type": "subscribe", "pattern": "h"}))
            await recv_json(ws)
            assert httpx.get(f"{server.http}/healthz").json()["status"] == "ok"

            redis_server.kill()
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            down = httpx.get(f"{server.http}/healthz", timeout=5)

        redis_server.start()
        server.wait_until_healthy(timeout=10)
    finally:
        server.stop()

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert down.status_code == 503
    assert down.json()["redis"] is False
    assert down.json()["pubsub"] is False


async def test_sigterm_tells_clients_to_reconnect_and_exits_within_the_bound(
    realtime_redis: RedisServer, tmp_path: Any
) -> None:
    server = ServerProcess(realtime_redis.url, tmp_path, "--drain-seconds", "2").start()
    credential = headers()
    try:
        ws = await websockets.connect(server.ws, additional_headers=credential)
        await ws.send(json.dumps({"type": "subscribe", "pattern": "t"}))
        await recv_json(ws)
        async with (
            httpx.AsyncClient(timeout=5) as http,
            http.stream(
                "GET", f"{server.http}/sse", params={"pattern": "t"}, headers=credential
            ) as stream,
        ):
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            tail = [line async for line in lines]
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
        exit_code = await asyncio.to_thread(server.wait, 5)
        elapsed = time.monotonic() - started
    finally:
        server.kill()

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    retry = [line for line in tail if line.startswith("retry:")]
    assert retry and 1000 <= int(retry[-1].split(":")[1]) <= 2000
    # uvicorn re-raises the signal once it has shut down gracefully, so the
    # process reports SIGTERM, as an unhandled one would, but only after the drain.
    assert exit_code == -signal.SIGTERM
    assert elapsed < 3


def _writer(url: str, namespace: str, count: int) -> None:
    store = MemoryStore(connect(url))
    for i in range(count):
        store.put(namespace, f"k{i % 50}", i)
        time.sleep(0.002)


async def test_a_client_moves_to_another_process_after_sigkill_and_resumes_gap_free(
    realtime_redis: RedisServer, tmp_path: Any
) -> None:
    total = 600
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServerProcess(realtime_redis.url, tmp_path / "a").start()
    second = ServerProcess(realtime_redis.url, tmp_path / "b").start()
    writer = multiprocessing.get_context("spawn").Process(
        target=_writer, args=(realtime_redis.url, "moving", total)
    )
    credential = headers()
    seqs: list[int] = []
    try:
        async with websockets.connect(first.ws, additional_headers=credential) as ws:
            await ws.send(json.dumps({"type": "subscribe", "pattern": "moving"}))
            assert (await recv_json(ws))["type"] == "subscribed"
            writer.start()
            last_token = None
            with pytest.raises(ConnectionClosed):
                while True:
                    frame = await recv_json(ws, timeout=10)
                    seqs.append(frame["seq"])
                    last_token = frame["token"]
                    if len(seqs) == 100:
                        first.kill()  # SIGKILL under write load

        async with websockets.connect(second.ws, additional_headers=credential) as ws:
            await ws.send(
                json.dumps(
                    {"type": "subscribe", "pattern": "moving", "resume": last_token}
                )
            )
            assert (await recv_json(ws))["recovered"] is True
            while seqs[-1] < total:
                seqs.append((await recv_json(ws, timeout=10))["seq"])
        writer.join(timeout=20)
    finally:
        first.kill()
        second.stop()
        if writer.is_alive():
            writer.kill()

    assert writer.exitcode == 0
    assert seqs == list(range(1, total + 1))


async def test_live_events_and_resume_work_on_a_redis_cluster(
    redis_cluster: RedisClusterServers, tmp_path: Any
) -> None:
    redis_cluster.flush()
    store = MemoryStore(connect(redis_cluster.url))
    store.put("c0", "k", "before")
    head_c0 = store.changes("c0").items[0].token
    server = ServerProcess(redis_cluster.url, tmp_path).start()
    credential = headers()
    try:
        async with websockets.connect(server.ws, additional_headers=credential) as ws:
            await ws.send(json.dumps({"type": "subscribe", "pattern": "c*"}))
            live_ack = await recv_json(ws)
            for namespace in ("c1", "c2", "c3", "c4"):
                store.put(namespace, "k", namespace)
            live = [await recv_json(ws) for _ in range(4)]
        store.put("c1", "k", "again")
        async with websockets.connect(server.ws, additional_headers=credential) as ws:
            resume = {"c1": live[0]["token"]}
            await ws.send(
                json.dumps({"type": "subscribe", "pattern": "c*", "resume": resume})
            )
            ack = await recv_json(ws)
            missed = [await recv_json(ws) for _ in range(5)]
    finally:
        server.stop()
        store.client.close()

    assert live_ack["positions"] == {"c0": head_c0}
    assert [e["ns"] for e in live] == ["c1", "c2", "c3", "c4"]
    assert ack["recovered"] is True
    # Namespaces the resume leaves out are replayed from their start.
    assert sorted((e["ns"], e["seq"], e["value"]) for e in missed) == [
        ("c0", 1, "before"),
        ("c1", 2, "again"),
        ("c2", 1, "c2"),
        ("c3", 1, "c3"),
        ("c4", 1, "c4"),
    ]


async def _subscribe_read_resume(server: ServerProcess, reads: int) -> list[int]:
    """Subscribe live, read a few events, drop, resume, read more."""
    credential = headers()
    seqs: list[int] = []
    async with websockets.connect(server.ws, additional_headers=credential) as ws:
        await ws.send(json.dumps({"type": "subscribe", "pattern": "busy"}))
        position = (await recv_json(ws))["positions"]["busy"]
        for _ in range(reads):
            frame = await recv_json(ws, timeout=10)
            seqs.append(frame["seq"])
            position = frame["token"]
    async with websockets.connect(server.ws, additional_headers=credential) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "pattern": "busy", "resume": position})
        )
        await recv_json(ws)
        for _ in range(30):
            seqs.append((await recv_json(ws, timeout=10))["seq"])
    return seqs


async def test_clients_joining_and_resuming_under_write_load_see_each_event_once(
    realtime: ServerProcess, realtime_store: MemoryStore, realtime_redis: RedisServer
) -> None:
    writer = multiprocessing.get_context("spawn").Process(
        target=_writer, args=(realtime_redis.url, "busy", 1500)
    )
    writer.start()
    try:
        runs = await asyncio.gather(
            *(_subscribe_read_resume(realtime, reads) for reads in range(1, 31, 3))
        )
    finally:
        writer.kill()
        writer.join()

    for seqs in runs:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
