"""Small helpers over raw ASGI scopes and messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def headers(scope: Scope) -> dict[str, str]:
    """The request headers, lower-cased names (the last value wins)."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope["headers"]
    }


def query(scope: Scope) -> dict[str, str]:
    """The query parameters (the last value wins)."""
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def client_address(scope: Scope) -> str:
    """The peer's address, without its port."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def json_response(
    send: Send, status: int, body: Any, extra_headers: dict[str, str] | None = None
) -> None:
    """Send a whole JSON response."""
    payload = orjson.dumps(body)
    header_list = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    for name, value in (extra_headers or {}).items():
        header_list.append((name.lower().encode(), value.encode()))
    await send(
        {"type": "http.response.start", "status": status, "headers": header_list}
    )
    await send({"type": "http.response.body", "body": payload})


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every HTTP error."""
    return {"error": {"code": code, "message": message, **extra}}
