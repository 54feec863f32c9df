"""The WebSocket endpoint (``/ws``): authenticate, then serve JSON commands."""

from __future__ import annotations

import logging

import redis.exceptions

from redismem.server import protocol, ratelimit
from redismem.server.asgi import Receive, Scope, Send, client_address, headers, query
from redismem.server.auth import AuthError, Principal, credential_from
from redismem.server.backpressure import (
    Connection,
    ConnectionGone,
    QueuedWebSocket,
    UvicornWebSocket,
)
from redismem.server.protocol import Ping, ProtocolError, Subscribe, Unsubscribe
from redismem.server.state import ServerState

logger = logging.getLogger(__name__)


async def serve_websocket(
    state: ServerState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one WebSocket connection from handshake to close."""
    if (await receive())["type"] != "websocket.connect":
        return
    if state.draining or state.hub is None:
        await send({"type": "websocket.close", "code": protocol.CLOSE_RESTART})
        return

    # Accept first, then refuse with an error frame and a close code: a
    # browser can read those, but not the body of a refused handshake.
    await send({"type": "websocket.accept"})
    address = client_address(scope)
    principal = await _admit(state, scope, send, address)
    if principal is None:
        return

    conn = _connection(state, principal, address, send)
    # Credentials and headers are checked; do not keep them for the
    # connection's lifetime.
    scope["headers"] = []
    scope["query_string"] = b""
    hub = state.hub
    hub.connections.add(conn)
    state.metrics.connections.labels("ws").inc()
    logger.debug("websocket open: %s from %s", principal.subject, address)
    try:
        await _command_loop(state, conn, receive)
    finally:
        hub.disconnect(conn)
        state.limits.release(principal.subject, address)
        state.metrics.connections.labels("ws").dec()
        conn.close(1000, "")
        logger.debug("websocket closed: %s from %s", principal.subject, address)


async def _admit(
    state: ServerState, scope: Scope, send: Send, address: str
) -> Principal | None:
    try:
        principal = state.authenticator.authenticate(
            credential_from(headers(scope), query(scope))
        )
    except AuthError as exc:
        state.metrics.auth_failures.labels(exc.code).inc()
        await _refuse(
            send, protocol.error(exc.code, exc.reason), protocol.CLOSE_UNAUTHORIZED
        )
        return None

    refused = state.limits.admit(principal.subject, address)
    if refused is not None:
        state.metrics.refused.labels(refused).inc()
        message = f"too many connections for this {refused}"
        await _refuse(
            send,
            protocol.error(protocol.TOO_MANY_CONNECTIONS, message),
            protocol.CLOSE_TOO_MANY,
        )
        return None
    return principal


async def _refuse(send: Send, frame: bytes, code: int) -> None:
    await send({"type": "websocket.send", "text": frame.decode()})
    await send({"type": "websocket.close", "code": code})


def _connection(
    state: ServerState, principal: Principal, address: str, send: Send
) -> Connection:
    conn: Connection
    limit = state.config.max_send_buffer
    if UvicornWebSocket.supports(send):
        protocol_object = send.__self__  # type: ignore[attr-defined]
        conn = UvicornWebSocket(principal, address, limit, protocol_object)
    else:
        conn = QueuedWebSocket(principal, address, limit, send)
    conn.on_evict = state.on_evict
    return conn


async def _command_loop(state: ServerState, conn: Connection, receive: Receive) -> None:
    limit = state.config.max_message_bytes
    while not conn.closed:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        data = message.get("bytes") if text is None else text.encode()
        if data is None:
            continue
        if len(data) > limit:
            conn.send(
                protocol.error(
                    protocol.MESSAGE_TOO_BIG, f"messages are limited to {limit} bytes"
                )
            )
            conn.close(protocol.CLOSE_TOO_BIG, "message too big")
            return

        try:
            await _command(state, conn, protocol.parse_client_message(data))
        except ConnectionGone:
            return
        except ProtocolError as exc:
            conn.send(protocol.error(exc.code, exc.message, pattern=exc.pattern))
        except AuthError as exc:
            state.metrics.auth_failures.labels(exc.code).inc()
            conn.send(protocol.error(exc.code, exc.reason))
        except (redis.exceptions.RedisError, OSError) as exc:
            logger.warning("Redis failed during a command: %s", exc)
            conn.send(
                protocol.error(protocol.UNAVAILABLE, "Redis is unavailable; retry")
            )


async def _command(
    state: ServerState, conn: Connection, command: Subscribe | Unsubscribe | Ping
) -> None:
    assert state.hub is not None
    if isinstance(command, Ping):
        conn.send(protocol.PONG)
        return
    if isinstance(command, Unsubscribe):
        state.hub.unsubscribe(conn, command.pattern)
        conn.send(protocol.unsubscribed(command.pattern))
        return

    pattern = command.pattern
    if pattern.text in conn.patterns:
        raise ProtocolError(
            protocol.ALREADY_SUBSCRIBED, "already subscribed", pattern.text
        )
    if len(conn.patterns) >= state.config.max_subscriptions:
        raise ProtocolError(
            protocol.TOO_MANY_SUBSCRIPTIONS,
            f"at most {state.config.max_subscriptions} subscriptions per connection",
            pattern.text,
        )
    conn.principal.require_read(pattern)
    decision = await ratelimit.decide(
        state.config.rate_limiter, conn.principal.subject, "subscribe"
    )
    if not decision.allowed:
        state.metrics.rate_limited.labels("subscribe").inc()
        conn.send(
            protocol.error(
                protocol.RATE_LIMITED,
                "too many subscribe calls",
                pattern=pattern.text,
                retry_after=decision.retry_after,
            )
        )
        return
    await state.hub.subscribe(conn, pattern, command.resume, coalesce=command.coalesce)
