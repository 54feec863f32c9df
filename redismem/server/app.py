"""``create_app``: the server as one ASGI application.

``/ws`` and ``/sse`` are served by raw ASGI handlers (the hot path needs the
server's own ``send``); everything else (the HTTP API, ``/healthz``,
``/metrics``) is a Starlette application. Mount the result in a Starlette or
FastAPI application, or run it with ``redismem serve``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import redis
import redis.asyncio
from starlette.applications import Starlette

from redismem.connection import CLUSTER_SCHEME, MEMORY_URL, connect_async, is_embedded
from redismem.server import health, http_api
from redismem.server.asgi import Receive, Scope, Send
from redismem.server.config import ServerConfig
from redismem.server.sse import serve_sse
from redismem.server.state import ServerState
from redismem.server.websocket import serve_websocket

logger = logging.getLogger(__name__)

DEFAULT_URL = "redis://localhost:6379/0"
#: Redis connections for commands (subscribing reads the log); more callers
#: than this wait for one instead of failing.
COMMAND_CONNECTIONS = 100
#: How long a command waits for a pooled connection before it fails.
COMMAND_POOL_WAIT = 10.0


class RealtimeApp:
    """The ASGI application; ``state`` is its ServerState."""

    def __init__(self, config: ServerConfig) -> None:
        self.state = ServerState(config, resolve_url(config.url))
        if not config.auth.enabled:
            logger.warning(
                "authentication is OFF (--no-auth): every caller has every right"
            )
        self.http = Starlette(
            routes=[*http_api.routes, *health.routes], lifespan=self._lifespan
        )
        self.http.state.server = self.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket" and path == "/ws":
            await serve_websocket(self.state, scope, receive, send)
        elif scope["type"] == "http" and path == "/sse":
            await serve_sse(self.state, scope, receive, send)
        else:
            await self.http(_segments_kept(scope), receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        """Connect to Redis and start the fan-out."""
        url = self.state.url
        client = command_client(url)
        hub = self.state.attach(client, _pubsub_client(url))
        await hub.start()
        logger.info("realtime server ready on %s", _redacted(url))

    async def shutdown(self) -> None:
        """Tell clients to reconnect, stop the fan-out, close the clients."""
        self.state.drain()
        hub = self.state.hub
        if hub is not None:
            await hub.stop()
            await _close(hub.pubsub_client)
        if self.state.client is not None:
            await _close(self.state.client)


def create_app(config: ServerConfig | None = None, **settings: Any) -> RealtimeApp:
    """The realtime server as an ASGI app; ``settings`` override ServerConfig fields."""
    config = config or ServerConfig()
    for name, value in settings.items():
        if not hasattr(config, name):
            raise TypeError(f"unknown server setting {name!r}")
        setattr(config, name, value)
    return RealtimeApp(config)


def resolve_url(url: str | None, default: str = DEFAULT_URL) -> str:
    """``url``, else ``default`` if a Redis answers there, else embedded mode."""
    if url:
        return url
    probe = redis.Redis.from_url(
        default, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        probe.ping()
    except redis.RedisError:
        logger.warning(
            "no Redis configured or answering at %s: "
            "using the embedded mode (memory://)",
            default,
        )
        return MEMORY_URL
    finally:
        probe.close()
    return default


def _segments_kept(scope: Scope) -> Scope:
    """The scope with each path segment kept percent-encoded.

    Namespaces and keys may contain ``/`` (sent as ``%2F``); routing on the
    decoded path would split them. The HTTP API decodes its parameters.
    """
    raw = scope.get("raw_path")
    if (
        scope["type"] != "http"
        or not raw
        or not scope.get("path", "").startswith("/v1/")
    ):
        return scope
    segments = raw.decode("latin-1").split("?", 1)[0].split("/")
    path = "/".join(quote(unquote(segment), safe="") for segment in segments)
    return {**scope, "path": path}


def command_client(url: str, *, wait: float = COMMAND_POOL_WAIT, **options: Any) -> Any:
    """An asyncio client whose commands wait up to ``wait`` s for a connection.

    Thousands of clients subscribe at once after a restart; redis-py's
    default pool refuses the 101st concurrent command ("Too many
    connections"), a blocking pool makes it wait its turn instead.
    ``options`` (socket timeouts) go to every connection.
    """
    if url.startswith(CLUSTER_SCHEME) or is_embedded(url):
        return connect_async(url, **options)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=COMMAND_CONNECTIONS, timeout=wait, **options
    )
    return redis.asyncio.Redis.from_pool(pool)


def _pubsub_client(url: str) -> Any:
    # A cluster client has no pub/sub of its own; classic PUBLISH reaches
    # every node, so a plain connection to the seed node hears every event.
    if url.startswith(CLUSTER_SCHEME):
        return redis.asyncio.Redis.from_url("redis://" + url[len(CLUSTER_SCHEME) :])
    if is_embedded(url):
        return connect_async(url)
    return redis.asyncio.Redis.from_url(url)


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]
