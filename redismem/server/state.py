"""What every endpoint of one server process shares."""

from __future__ import annotations

import logging
import random
from typing import Any

from redismem.aio.store import MemoryStore
from redismem.server import protocol
from redismem.server.auth import Authenticator
from redismem.server.backpressure import Connection, SseStream
from redismem.server.config import ServerConfig
from redismem.server.fanout import Hub
from redismem.server.limits import ConnectionLimits
from redismem.server.metrics import Metrics

logger = logging.getLogger(__name__)


class ServerState:
    """Configuration, Redis clients, the hub, limits and metrics of a process."""

    def __init__(self, config: ServerConfig, url: str) -> None:
        self.config = config
        self.url = url
        self.metrics = Metrics()
        self.authenticator = Authenticator(config.auth)
        self.limits = ConnectionLimits(
            config.max_connections,
            config.max_connections_per_subject,
            config.max_connections_per_address,
        )
        self.draining = False
        self.client: Any = None
        self.store: MemoryStore | None = None
        self.hub: Hub | None = None

    def attach(self, client: Any, pubsub_client: Any) -> Hub:
        """Use these Redis clients; return the hub built on them."""
        self.client = client
        self.store = MemoryStore(client)
        self.hub = Hub(
            self.store, pubsub_client, self.metrics, max_replay=self.config.max_replay
        )
        return self.hub

    def on_evict(self, conn: Connection) -> None:
        """Account for a slow consumer that was evicted."""
        self.metrics.evicted.inc()
        self.metrics.dropped.inc()

    def drain(self) -> None:
        """Tell every client to reconnect elsewhere; refuse new ones.

        WebSockets are closed with 1012 ("service restart"); SSE streams end
        with ``retry:`` advice spread with jitter, so clients do not all
        come back in the same instant.
        """
        if self.draining:
            return
        self.draining = True
        hub = self.hub
        if hub is None:
            return
        logger.info("draining %d connections", len(hub.connections))
        retry = self.config.sse_retry_ms
        for conn in list(hub.connections):
            if isinstance(conn, SseStream):
                jittered = retry + random.randint(0, retry)
                conn.end(f"retry: {jittered}\n\n".encode())
            else:
                conn.close(
                    protocol.CLOSE_RESTART, "server restarting: reconnect and resume"
                )
