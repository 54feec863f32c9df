"""Clients from URLs: a real Redis, a Redis Cluster, or the embedded mode.

``redis://``, ``rediss://`` and ``unix://`` give a ``redis.Redis``;
``redis+cluster://host:port`` a ``RedisCluster`` seeded from that node;
``memory://`` an in-process fakeredis server that runs the same Lua scripts,
for trying redismem without a Redis server. Every ``memory://`` client of one
process shares one fake server, so a subscriber sees another client's writes.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

logger = logging.getLogger(__name__)

MEMORY_URL = "memory://"
CLUSTER_SCHEME = "redis+cluster://"


def is_embedded(url: str) -> bool:
    """Whether ``url`` selects the in-process embedded mode."""
    return url.startswith("memory:")


def connect(url: str, **options: Any) -> Any:
    """A synchronous client for ``url``; ``options`` go to redis-py's from_url
    (socket timeouts, say) and are ignored by the embedded mode."""
    if is_embedded(url):
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded_server())
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(_seed_url(url), **options)
    return redis.Redis.from_url(url, **options)


def connect_async(url: str, **options: Any) -> Any:
    """An asyncio client for ``url``; ``options`` as for :func:`connect`."""
    if is_embedded(url):
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_embedded_server())
    if url.startswith(CLUSTER_SCHEME):
        return AsyncRedisCluster.from_url(_seed_url(url), **options)
    return redis.asyncio.Redis.from_url(url, **options)


def _seed_url(url: str) -> str:
    return "redis://" + url[len(CLUSTER_SCHEME) :]


@cache
def _embedded_server() -> Any:
    import fakeredis

    logger.info("embedded mode: an in-process fakeredis server, nothing persists")
    return fakeredis.FakeServer()
