"""Graceful shutdown under uvicorn: drain clients first, exit within a bound.

uvicorn stops accepting on SIGTERM, then waits for open connections. A
streaming connection never ends by itself, so :class:`DrainingServer` first
tells every client to reconnect (WebSocket close 1012, SSE ``retry:`` with
jitter), and uvicorn's ``timeout_graceful_shutdown`` bounds what remains.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from redismem.server.app import RealtimeApp
from redismem.server.lean_ws import LeanWebSocketProtocol


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains a RealtimeApp before shutting down."""

    def __init__(self, config: uvicorn.Config, app: RealtimeApp) -> None:
        super().__init__(config)
        self.realtime_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Drain, then let uvicorn close connections and stop."""
        self.realtime_app.state.drain()
        await super().shutdown(sockets)


def uvicorn_config(
    app: RealtimeApp, host: str, port: int, **options: object
) -> uvicorn.Config:
    """The uvicorn settings the server's hot path relies on.

    uvicorn's ``websockets-sansio`` protocol (here in its leaner form,
    :class:`LeanWebSocketProtocol`) lets the fan-out write frames straight to
    each socket; compression is off because a compressed frame cannot be
    shared.
    """
    config = app.state.config
    settings: dict[str, Any] = {
        "ws": LeanWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_max_size": config.max_message_bytes,
        "ws_ping_interval": config.heartbeat,
        "ws_ping_timeout": config.heartbeat_timeout,
        "timeout_graceful_shutdown": max(1, round(config.drain_seconds)),
        "lifespan": "on",
        "access_log": False,
    }
    settings.update(options)
    return uvicorn.Config(app, host=host, port=port, **settings)
