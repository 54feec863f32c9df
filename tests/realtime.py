"""Running the realtime server for tests: a real uvicorn on a free port.

``ServerProcess`` runs ``redismem serve`` in a subprocess (for signals and
kills); ``ThreadedServer`` runs an app built in the test on uvicorn in a
thread, for settings the CLI does not offer (a custom rate limiter).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.servers import free_port

SECRET = "test-secret-0123456789-abcdefghijkl"
START_TIMEOUT = 15.0

API_KEYS = {
    "key-reader": {"subject": "reader", "read": ["*"], "write": []},
    "key-writer": {"subject": "writer", "read": ["*"], "write": ["*"]},
}


def token(
    subject: str = "alice",
    read: Sequence[str] = ("*",),
    write: Sequence[str] = ("*",),
    *,
    expires_in: float = 600,
    secret: str = SECRET,
    **claims: Any,
) -> str:
    """An HS256 token with namespace grants."""
    payload = {
        "sub": subject,
        "exp": int(time.time() + expires_in),
        "ns": {"read": list(read), "write": list(write)},
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class ServerProcess:
    """``redismem serve`` in a subprocess on a free loopback port."""

    def __init__(self, url: str, directory: Path, *options: str) -> None:
        self.url = url
        self.port = free_port()
        self.directory = directory
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"server-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> ServerProcess:
        keys = self.directory / "api-keys.json"
        keys.write_text(json.dumps(API_KEYS))
        args = [
            sys.executable, "-c", "from redismem.cli import main; main()",
            "--url", self.url, "-v", "serve",
            "--port", str(self.port),
            "--jwt-secret", SECRET,
            "--api-keys", str(keys),
            *self.options,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.wait_until_healthy()
        return self

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"server did not become healthy:\n{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


class ThreadedServer:
    """A RealtimeApp on uvicorn in a background thread, with a real socket."""

    def __init__(self, app: Any, **options: Any) -> None:
        import uvicorn

        from redismem.server.shutdown import uvicorn_config

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn_config(app, "127.0.0.1", self.port, log_level="warning", **options)
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise TimeoutError("threaded server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame from a websockets client, decoded."""
    frame = await asyncio.wait_for(ws.recv(), timeout)
    decoded: dict[str, Any] = json.loads(frame)
    return decoded


def headers() -> dict[str, str]:
    """Credentials of a fresh subject, so per-subject limits never carry over."""
    return bearer(token(f"user-{uuid.uuid4().hex[:8]}"))


async def subscribe(ws: Any, pattern: str, resume: Any = None) -> dict[str, Any]:
    """Send a subscribe frame and return the server's answer."""
    await ws.send(
        json.dumps({"type": "subscribe", "pattern": pattern, "resume": resume})
    )
    return await recv_json(ws)


async def recv_until(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """Skip frames until one of type ``kind`` arrives."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame
