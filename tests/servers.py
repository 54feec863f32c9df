"""Real redis-server processes for the tests: standalone and a 3-master cluster.

Each server runs on a free loopback port in its own temporary directory, so
tests can restart it, enable AOF and never meet leftover state.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
START_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port that is free now, and whose cluster bus port is too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisServer:
    """One redis-server process that can be stopped, restarted and inspected."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", "redis.log",
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self._wait_until_ready()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), so an AOF is flushed."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL)."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(port=self.port, **options)  # type: ignore[arg-type]

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited:\n{log[-2000:]}")
            try:
                if probe.ping():
                    probe.close()
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on {self.port} did not start")
            time.sleep(0.02)


class RedisClusterServers:
    """Three masters joined into a cluster with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--appendonly", "no",
            )  # fmt: skip
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> Sequence[int]:
        return [node.port for node in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_until_ok()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def flush(self) -> None:
        for node in self.nodes:
            client = node.client()
            client.flushall()
            client.script_flush()
            client.close()

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            states = []
            for node in self.nodes:
                client = node.client(decode_responses=True)
                info = client.execute_command("CLUSTER", "INFO")
                states.append(_field(info, "cluster_state"))
                client.close()
            if all(state == "ok" for state in states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster did not become ok: {states}")
            time.sleep(0.05)


def _field(info: object, name: str) -> str:
    """One field of CLUSTER INFO, whether redis-py parsed it or not."""
    if isinstance(info, dict):
        return str(info[name])
    for line in str(info).splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""
