"""Everything a server process is configured with, and its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from redismem.server.auth import AuthConfig
from redismem.server.ratelimit import RateLimiter, unlimited


@dataclass
class ServerConfig:
    """Settings of one server process.

    ``url`` None means "the default local Redis if it answers, else the
    embedded mode". Sizes are in bytes, durations in seconds.
    """

    url: str | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: Called as ``rate_limiter(subject, operation)`` before each API call
    #: and WebSocket subscribe; see ``redismem.server.ratelimit``.
    rate_limiter: RateLimiter = unlimited
    max_connections: int = 10_000
    max_connections_per_subject: int = 1_000
    max_connections_per_address: int = 1_000
    max_subscriptions: int = 100
    max_message_bytes: int = 64 * 1024
    #: A connection whose unsent bytes exceed this is a slow consumer.
    max_send_buffer: int = 1024 * 1024
    #: WebSocket ping interval and SSE keep-alive comment interval.
    heartbeat: float = 20.0
    #: A WebSocket peer that has not answered a ping in this time is closed.
    heartbeat_timeout: float = 20.0
    #: More missed events than this are not replayed: the client gets a reset.
    max_replay: int = 10_000
    #: On shutdown, clients are told to reconnect and the process exits
    #: within this bound.
    drain_seconds: float = 5.0
    #: SSE reconnection advice; on drain it is spread with jitter up to 2x.
    sse_retry_ms: int = 1000
