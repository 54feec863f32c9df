"""The WebSocket and SSE wire protocol, without I/O: parse what clients send,
encode what the server sends, and the codes both sides rely on.

Documented for clients in ``docs/protocol.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from redismem.errors import InvalidNamespace, InvalidToken, RedisMemError
from redismem.models import ChangeEvent, Record
from redismem.server.patterns import Pattern, parse_pattern
from redismem.tokens import decode_log_token

# Error codes carried by {"type": "error"} frames and HTTP error bodies.
BAD_MESSAGE = "bad_message"
INVALID_PATTERN = "invalid_pattern"
INVALID_TOKEN = "invalid_token"
ALREADY_SUBSCRIBED = "already_subscribed"
NOT_SUBSCRIBED = "not_subscribed"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
TOO_MANY_CONNECTIONS = "too_many_connections"
MESSAGE_TOO_BIG = "message_too_big"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"

# WebSocket close codes (4000-4999 are the application's own).
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012  # "service restart": reconnect, resuming from your token
CLOSE_RESUME = 4001  # fell behind or the feed broke: reconnect and resume
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429


class ProtocolError(RedisMemError):
    """A client message was refused; ``code`` goes into the error frame."""

    def __init__(self, code: str, message: str, pattern: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.pattern = pattern


@dataclass(frozen=True)
class Subscribe:
    """``{"type": "subscribe", "pattern": ..., "resume": ..., "coalesce": ...}``.

    ``resume`` is None for "live from now", else a map of namespace to the
    token after which delivery resumes (None: from the start of its log); an
    exact pattern may give the token as a plain string. ``coalesce`` lets the
    server replace a held event by a newer one of the same key while the
    connection is behind.
    """

    pattern: Pattern
    resume: dict[str, str | None] | None
    coalesce: bool = False


@dataclass(frozen=True)
class Unsubscribe:
    """``{"type": "unsubscribe", "pattern": ...}``."""

    pattern: Pattern


@dataclass(frozen=True)
class Ping:
    """``{"type": "ping"}``: answered with ``{"type": "pong"}``."""


ClientMessage = Subscribe | Unsubscribe | Ping


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client message, raising ProtocolError if it is not one."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError(BAD_MESSAGE, "not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_MESSAGE, "a message must be a JSON object")

    kind = message.get("type")
    if kind == "ping":
        return Ping()
    if kind not in ("subscribe", "unsubscribe"):
        raise ProtocolError(BAD_MESSAGE, f"unknown message type {kind!r}")

    pattern = _pattern(message.get("pattern"))
    if kind == "unsubscribe":
        return Unsubscribe(pattern)
    coalesce = message.get("coalesce", False)
    if not isinstance(coalesce, bool):
        raise ProtocolError(BAD_MESSAGE, "coalesce must be true or false", pattern.text)
    resume = parse_resume(pattern, message.get("resume"))
    return Subscribe(pattern, resume, coalesce)


def parse_resume(pattern: Pattern, resume: object) -> dict[str, str | None] | None:
    """Check a ``resume`` value against its pattern; return it as a mapping.

    None (no resume) stays None: delivery is live from now. In a mapping, a
    namespace's None means "from the start of its log", like a namespace the
    mapping leaves out.
    """
    if resume is None:
        return None
    if isinstance(resume, str):
        if not pattern.exact:
            raise ProtocolError(
                INVALID_TOKEN,
                "a wildcard pattern resumes from an object of namespace: token",
                pattern.text,
            )
        resume = {pattern.prefix: resume}
    if not isinstance(resume, dict):
        raise ProtocolError(
            INVALID_TOKEN, "resume must be null, a token or an object", pattern.text
        )

    for namespace, token in resume.items():
        if not pattern.matches(namespace):
            raise ProtocolError(
                INVALID_TOKEN,
                f"resume names {namespace!r}, outside the pattern",
                pattern.text,
            )
        if token is None:
            continue
        try:
            decode_log_token(token)
        except InvalidToken as exc:
            raise ProtocolError(INVALID_TOKEN, str(exc), pattern.text) from None
    return dict(resume)


def _pattern(text: object) -> Pattern:
    try:
        return parse_pattern(text)
    except InvalidNamespace as exc:
        raise ProtocolError(INVALID_PATTERN, str(exc)) from None


# Server frames -------------------------------------------------------------


def event_payload(raw: bytes, token: str) -> bytes:
    """The event frame for a published change, spliced without re-encoding.

    ``raw`` is the JSON object a write script published; the frame is that
    object with ``type`` and ``token`` put in front.
    """
    return b'{"type":"event","token":"' + token.encode() + b'",' + raw[1:]


def coalesced_payload(payload: bytes, superseded: int) -> bytes:
    """An event frame that says how many older events of its key it replaced.

    ``payload`` is an event frame (a JSON object); the count is spliced in
    before its closing brace, without re-encoding the value.
    """
    return payload[:-1] + b',"coalesced":' + str(superseded).encode() + b"}"


def history_payload(event: ChangeEvent) -> bytes:
    """The event frame for a change read back from the log."""
    return orjson.dumps(
        {
            "type": "event",
            "token": event.token,
            "ns": event.namespace,
            "key": event.key,
            "op": event.op,
            "version": event.version,
            "seq": event.seq,
            "ts": event.ts,
            "epoch": event.epoch,
            "id": event.id,
            "value": event.value,
        }
    )


def subscribed(pattern: Pattern, recovered: bool, positions: dict[str, Any]) -> bytes:
    """The acknowledgement of a subscription."""
    return orjson.dumps(
        {
            "type": "subscribed",
            "pattern": pattern.text,
            "recovered": recovered,
            "positions": positions,
        }
    )


def unsubscribed(pattern: Pattern) -> bytes:
    """The acknowledgement of an unsubscription."""
    return orjson.dumps({"type": "unsubscribed", "pattern": pattern.text})


def reset(namespace: str, token: str | None, records: list[Record]) -> bytes:
    """A reset: the namespace's records now, and the token to go on from."""
    return orjson.dumps(
        {
            "type": "reset",
            "ns": namespace,
            "token": token,
            "records": [
                {
                    "key": record.key,
                    "value": record.value,
                    "version": record.version,
                    "created": record.created,
                    "updated": record.updated,
                }
                for record in records
            ],
        }
    )


def error(
    code: str,
    message: str,
    *,
    pattern: str | None = None,
    retry_after: float | None = 0,
) -> bytes:
    """An error frame; ``retry_after`` None (sent as null) means never."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if pattern is not None:
        frame["pattern"] = pattern
    if retry_after is None or retry_after:
        frame["retry_after"] = retry_after
    return orjson.dumps(frame)


PONG = b'{"type":"pong"}'


def websocket_text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455, 5.2).

    A server's frames are never masked, so one frame serves every client.
    """
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


def sse_message(
    payload: bytes, *, event_id: str | None = None, event: str | None = None
) -> bytes:
    """One Server-Sent Events message; ``payload`` is one line of JSON."""
    lines = []
    if event_id is not None:
        lines.append(b"id: " + event_id.encode())
    if event is not None:
        lines.append(b"event: " + event.encode())
    lines.append(b"data: " + payload)
    return b"\n".join(lines) + b"\n\n"


def sse_event_id(namespace: str, token: str) -> str:
    """The SSE ``id:`` of an event: namespace and token, space-separated."""
    return f"{namespace} {token}"
