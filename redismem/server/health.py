"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from redismem.server.http_api import json
from redismem.server.state import ServerState

PING_TIMEOUT = 1.0


async def redis_answers(state: ServerState) -> bool:
    """Whether Redis answers a PING within a second."""
    try:
        return bool(await asyncio.wait_for(state.client.ping(), PING_TIMEOUT))
    except Exception:
        return False


async def healthz(request: Request) -> Response:
    """200 while Redis and the pub/sub link are up and the server is not draining."""
    state: ServerState = request.app.state.server
    redis_up = await redis_answers(state)
    pubsub_up = state.hub is not None and state.hub.connected
    healthy = redis_up and pubsub_up and not state.draining
    body = {
        "status": "ok" if healthy else "unhealthy",
        "redis": redis_up,
        "pubsub": pubsub_up,
        "draining": state.draining,
    }
    return json(body, 200 if healthy else 503)


async def metrics(request: Request) -> Response:
    """The Prometheus text exposition."""
    state: ServerState = request.app.state.server
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
