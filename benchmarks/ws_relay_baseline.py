"""Baseline for bench_server.py: raw Redis pub/sub relayed with websockets.broadcast().

What a user would write instead of the realtime server: one pub/sub
subscription, every message broadcast as is to every connected client. No
authentication, no subscriptions, no resume.

Usage: python benchmarks/ws_relay_baseline.py PORT REDIS_URL CHANNEL
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main(port: int, url: str, channel: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    pubsub = redis.asyncio.Redis.from_url(url).pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"].decode())


if __name__ == "__main__":
    arguments = (int(sys.argv[1]), sys.argv[2], sys.argv[3])
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(*arguments))
    else:  # the realtime server runs on uvloop too when it is installed
        uvloop.run(main(*arguments))
