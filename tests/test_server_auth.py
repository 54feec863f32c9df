"""Authentication and authorisation of the realtime server, with real clients."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed

from redismem import MemoryStore
from tests.realtime import SECRET, ServerProcess, bearer, recv_json, token

pytestmark = pytest.mark.anyio


def subject() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def refused_frame(
    url: str, headers: dict[str, str]
) -> tuple[dict[str, Any], int]:
    """Connect, read the error frame, and return it with the close code."""
    async with websockets.connect(url, additional_headers=headers) as ws:
        frame = await recv_json(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return frame, closed.value.rcvd.code


BAD_CREDENTIALS = [
    ({}, "auth_missing"),
    (bearer("not-a-key-nor-a-token"), "auth_malformed"),
    (bearer("abc.def.ghi"), "auth_malformed"),
    (bearer(token(expires_in=-60)), "auth_expired"),
    (
        bearer(token(secret="another-secret-of-enough-length-1234")),
        "auth_bad_signature",
    ),
    (
        bearer(
            jwt.encode({"sub": "x", "ns": {"read": ["*"]}}, SECRET, algorithm="HS256")
        ),
        "auth_invalid",
    ),
]


@pytest.mark.parametrize(("headers", "code"), BAD_CREDENTIALS)
async def test_websocket_refuses_bad_credentials_with_a_code_and_close_4401(
    realtime: ServerProcess, headers: dict[str, str], code: str
) -> None:
    frame, close_code = await refused_frame(realtime.ws, headers)

    assert frame["type"] == "error"
    assert frame["code"] == code
    assert close_code == 4401
    assert SECRET not in json.dumps(frame)


@pytest.mark.parametrize(("headers", "code"), BAD_CREDENTIALS)
def test_http_api_refuses_bad_credentials_with_401_and_writes_nothing(
    realtime: ServerProcess,
    realtime_store: MemoryStore,
    headers: dict[str, str],
    code: str,
) -> None:
    answer = httpx.put(
        f"{realtime.http}/v1/namespaces/users/records/alice",
        json={"value": 1},
        headers=headers,
    )

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == code
    assert realtime_store.get("users", "alice") is None
    assert realtime_store.changes("users").items == []


def test_sse_refuses_bad_credentials_with_401(realtime: ServerProcess) -> None:
    answer = httpx.get(f"{realtime.http}/sse", params={"pattern": "users"})

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "auth_missing"


async def test_subscribing_outside_read_grants_is_forbidden_and_the_connection_lives(
    realtime: ServerProcess,
) -> None:
    headers = bearer(token(subject(), read=["tenant-a/*"], write=[]))
    async with websockets.connect(realtime.ws, additional_headers=headers) as ws:
        for pattern in ("tenant-b/notes", "tenant-*", "*"):
            await ws.send(json.dumps({"type": "subscribe", "pattern": pattern}))
            frame = await recv_json(ws)
            assert (frame["type"], frame["code"]) == ("error", "forbidden")

        await ws.send(json.dumps({"type": "subscribe", "pattern": "tenant-a/notes"}))
        assert (await recv_json(ws))["type"] == "subscribed"


def test_writing_outside_the_write_grants_is_forbidden_and_writes_nothing(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    headers = bearer(token(subject(), read=["*"], write=["tenant-a/*"]))

    refused = httpx.put(
        f"{realtime.http}/v1/namespaces/tenant-b%2Fnotes/records/k",
        json={"value": 1},
        headers=headers,
    )
    allowed = httpx.put(
        f"{realtime.http}/v1/namespaces/tenant-a%2Fnotes/records/k",
        json={"value": 1},
        headers=headers,
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert realtime_store.get("tenant-b/notes", "k") is None
    assert allowed.status_code == 201
    record = realtime_store.get("tenant-a/notes", "k")
    assert record is not None and record.value == 1


def test_a_read_only_api_key_reads_but_cannot_write(
    realtime: ServerProcess, realtime_store: MemoryStore
) -> None:
    realtime_store.put("users", "alice", {"n": 1})

    read = httpx.get(
        f"{realtime.http}/v1/namespaces/users/records/alice",
        headers={"X-API-Key": "key-reader"},
    )
    write = httpx.delete(
        f"{realtime.http}/v1/namespaces/users/records/alice",
        headers=bearer("key-reader"),
    )

    assert read.status_code == 200
    assert read.json()["value"] == {"n": 1}
    assert write.status_code == 403
    assert realtime_store.get("users", "alice") is not None


def test_an_rs256_token_is_verified_with_the_configured_public_key(
    realtime_redis: Any, realtime_store: MemoryStore, tmp_path: Any
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_bytes(public_pem)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "svc", "exp": 2_000_000_000, "ns": {"read": ["*"], "write": ["*"]}}
    good = jwt.encode(claims, private, algorithm="RS256")
    forged = jwt.encode(claims, other, algorithm="RS256")

    server = ServerProcess(
        realtime_redis.url, tmp_path, "--jwt-public-key", str(tmp_path / "public.pem")
    ).start()
    try:
        url = f"{server.http}/v1/namespaces/users/records/k"
        accepted = httpx.put(url, json={"value": 1}, headers=bearer(good))
        refused = httpx.put(url, json={"value": 2}, headers=bearer(forged))
    finally:
        server.stop()

    assert accepted.status_code == 201
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "auth_bad_signature"
    assert realtime_store.get("users", "k").value == 1  # type: ignore[union-attr]
