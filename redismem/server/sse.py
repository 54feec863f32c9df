"""The Server-Sent Events endpoint (``/sse?pattern=...``).

On an exact stream every change event carries ``id: <namespace> <token>``;
on a wildcard stream the ``id:`` is the subscription-wide feed token
(:func:`redismem.tokens.encode_feed_token`) of every namespace's position.
Either way a reconnect that sends it back as ``Last-Event-ID`` resumes the
whole stream without a gap. The acknowledgement carries an ``id:`` too, so a
stream that saw no event still resumes. The stream opens with ``retry:``
advice and sends a comment line as keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.exceptions

from redismem.errors import InvalidNamespace, InvalidToken
from redismem.server import protocol, ratelimit
from redismem.server.asgi import (
    Receive,
    Scope,
    Send,
    client_address,
    error_body,
    headers,
    json_response,
    query,
)
from redismem.server.auth import AuthError, Principal, credential_from
from redismem.server.backpressure import ConnectionGone, SseStream
from redismem.server.patterns import Pattern, parse_pattern
from redismem.server.protocol import ProtocolError
from redismem.server.state import ServerState
from redismem.tokens import decode_feed_token

logger = logging.getLogger(__name__)

KEEP_ALIVE = b": keep-alive\n\n"


async def serve_sse(
    state: ServerState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one SSE stream from request to end."""
    if state.draining or state.hub is None:
        await json_response(
            send, 503, error_body(protocol.UNAVAILABLE, "server is restarting")
        )
        return

    request_headers, params = headers(scope), query(scope)
    address = client_address(scope)
    try:
        principal = state.authenticator.authenticate(
            credential_from(request_headers, params)
        )
        pattern = parse_pattern(params.get("pattern"))
        principal.require_read(pattern)
        last_id = request_headers.get("last-event-id") or params.get("last_event_id")
        resume = _resume(pattern, last_id)
        coalesce = _coalesce(params.get("coalesce"))
    except AuthError as exc:
        state.metrics.auth_failures.labels(exc.code).inc()
        await json_response(send, exc.status, error_body(exc.code, exc.reason))
        return
    except InvalidNamespace as exc:
        await json_response(send, 400, error_body(protocol.INVALID_PATTERN, str(exc)))
        return
    except ProtocolError as exc:
        await json_response(send, 400, error_body(exc.code, exc.message))
        return

    decision = await ratelimit.decide(
        state.config.rate_limiter, principal.subject, "subscribe"
    )
    if not decision.allowed:
        state.metrics.rate_limited.labels("subscribe").inc()
        body = error_body(
            protocol.RATE_LIMITED,
            "too many subscribe calls",
            retry_after=decision.retry_after,
        )
        await json_response(send, 429, body, ratelimit.headers(decision, "subscribe"))
        return

    refused = state.limits.admit(principal.subject, address)
    if refused is not None:
        state.metrics.refused.labels(refused).inc()
        body = error_body(
            protocol.TOO_MANY_CONNECTIONS, f"too many connections for this {refused}"
        )
        await json_response(send, 429, body)
        return

    try:
        await _stream(
            state, principal, address, pattern, resume, coalesce, receive, send
        )
    finally:
        state.limits.release(principal.subject, address)


def _resume(pattern: Pattern, last_id: str | None) -> dict[str, str | None] | None:
    """The resume of a ``Last-Event-ID``: a feed token, or ``<namespace> <token>``."""
    if not last_id:
        return None
    namespace, _, token = last_id.partition(" ")
    if token:
        return protocol.parse_resume(pattern, {namespace: token})
    try:
        positions = decode_feed_token(last_id)
    except InvalidToken:
        raise ProtocolError(
            protocol.INVALID_TOKEN,
            "Last-Event-ID must be a feed token or '<namespace> <token>'",
        ) from None
    return protocol.parse_resume(
        pattern, {ns: position.encode() for ns, position in positions.items()}
    )


def _coalesce(flag: str | None) -> bool:
    if flag in (None, "0", "false"):
        return False
    if flag in ("1", "true"):
        return True
    raise ProtocolError(protocol.BAD_MESSAGE, "coalesce must be 0 or 1")


async def _stream(
    state: ServerState,
    principal: Principal,
    address: str,
    pattern: Pattern,
    resume: dict[str, str | None] | None,
    coalesce: bool,
    receive: Receive,
    send: Send,
) -> None:
    assert state.hub is not None
    hub = state.hub
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )

    stream = SseStream(principal, address, state.config.max_send_buffer)
    stream.on_evict = lambda conn: _evicted(state, send, conn)
    if not pattern.exact:
        stream.resume_feed()
    # The advice opens the first message block (the acknowledgement), so no
    # client sees a message without data.
    stream.send_raw(f"retry: {state.config.sse_retry_ms}\n".encode())
    hub.connections.add(stream)
    state.metrics.connections.labels("sse").inc()
    loop = asyncio.get_running_loop()
    joining = loop.create_task(_join(state, stream, pattern, resume, coalesce))
    gone = loop.create_task(_wait_disconnect(receive, stream))
    try:
        await _write_loop(state, stream, send)
    finally:
        joining.cancel()
        gone.cancel()
        hub.disconnect(stream)
        state.metrics.connections.labels("sse").dec()
        if not stream.evicted:
            with contextlib.suppress(Exception):
                await send(
                    {"type": "http.response.body", "body": b"", "more_body": False}
                )


async def _join(
    state: ServerState,
    stream: SseStream,
    pattern: Pattern,
    resume: dict[str, str | None] | None,
    coalesce: bool,
) -> None:
    assert state.hub is not None
    try:
        await state.hub.subscribe(stream, pattern, resume, coalesce=coalesce)
    except ConnectionGone:
        pass
    except ProtocolError as exc:
        stream.send(
            protocol.error(exc.code, exc.message, pattern=exc.pattern), event="error"
        )
        stream.end(b"")
    except (redis.exceptions.RedisError, OSError) as exc:
        logger.warning("Redis failed while subscribing: %s", exc)
        stream.send(
            protocol.error(protocol.UNAVAILABLE, "Redis is unavailable; retry"),
            event="error",
        )
        stream.end(b"")


async def _wait_disconnect(receive: Receive, stream: SseStream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.closed = True
    stream.wakeup.set()


async def _write_loop(state: ServerState, stream: SseStream, send: Send) -> None:
    keep_alive = state.config.heartbeat
    while True:
        if not await stream.wakeup.wait_at_most(keep_alive):
            await send(
                {"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True}
            )
            continue
        if stream.evicted:
            return
        body = stream.take()
        if stream.ending:
            body += stream.ending
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if stream.closed:
            return


def _evicted(state: ServerState, send: Send, stream: object) -> None:
    state.on_evict(stream)  # type: ignore[arg-type]
    # The peer is not reading: abort its socket so the bytes queued for it
    # are freed now (uvicorn's send() then returns instead of waiting).
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
