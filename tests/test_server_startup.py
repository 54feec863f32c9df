"""Starting the server: choosing Redis or the embedded mode, refusing bad setups."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import websockets
from click.testing import CliRunner

from redismem.cli import main
from redismem.server.app import resolve_url
from tests.realtime import ServerProcess, bearer, recv_json, token
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.anyio


def test_without_a_url_a_redis_answering_at_the_default_address_is_used(
    realtime_redis: RedisServer,
) -> None:
    assert resolve_url(None, default=realtime_redis.url) == realtime_redis.url


def test_without_a_url_or_a_redis_the_embedded_mode_is_used_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"

    with caplog.at_level(logging.WARNING, logger="redismem.server.app"):
        chosen = resolve_url(None, default=nowhere)

    assert chosen == "memory://"
    assert "embedded mode" in caplog.text


def test_serve_refuses_to_start_without_credentials_or_no_auth() -> None:
    result = CliRunner().invoke(main, ["--url", "memory://", "serve"])

    assert result.exit_code == 2
    assert "--no-auth" in result.output


async def test_the_embedded_mode_serves_events_and_the_api(tmp_path: Any) -> None:
    server = ServerProcess("memory://", tmp_path).start()
    credential = bearer(token("embedded"))
    try:
        async with websockets.connect(server.ws, additional_headers=credential) as ws:
            await ws.send(json.dumps({"type": "subscribe", "pattern": "mem"}))
            assert (await recv_json(ws))["type"] == "subscribed"
            async with httpx.AsyncClient(headers=credential) as http:
                written = await http.put(
                    f"{server.http}/v1/namespaces/mem/records/k", json={"value": 7}
                )
            event = await recv_json(ws)
    finally:
        server.stop()

    assert written.status_code == 201
    assert (event["type"], event["key"], event["value"], event["seq"]) == (
        "event",
        "k",
        7,
        1,
    )
