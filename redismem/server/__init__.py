"""The realtime server: WebSocket, SSE and an HTTP API over a MemoryStore.

``create_app()`` returns the ASGI application; ``redismem serve`` runs it on
uvicorn. The wire protocol is described in ``docs/protocol.md``.
"""

from redismem.server.app import RealtimeApp, create_app
from redismem.server.auth import AuthConfig, AuthError, Principal
from redismem.server.config import ServerConfig
from redismem.server.ratelimit import RateLimiter, policy_limiter

__all__ = [
    "AuthConfig",
    "AuthError",
    "Principal",
    "RateLimiter",
    "RealtimeApp",
    "ServerConfig",
    "create_app",
    "policy_limiter",
]
