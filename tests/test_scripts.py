"""The Lua scripts: loaded by SHA, reloaded after NOSCRIPT, documented, runnable
with redis-cli."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from redismem import MemoryStore, scripts
from redismem.connection import connect
from tests.servers import REDIS_CLI, RedisServer

ROOT = Path(__file__).resolve().parent.parent


def test_a_write_after_script_flush_reloads_the_script(
    store: MemoryStore, client: Any
) -> None:
    store.put("users", "alice", 1)
    client.script_flush()  # on a cluster, redis-py sends it to every primary
    assert not any(client.script_exists(scripts.load("put").sha))

    assert store.put("users", "alice", 2).version == 2
    assert store.list("users").items[0].value == 2


def test_put_many_after_script_flush_reloads_and_writes_each_once(
    store: MemoryStore, client: Any
) -> None:
    store.put("users", "alice", 1)
    client.script_flush()  # on a cluster, redis-py sends it to every primary
    assert not any(client.script_exists(scripts.load("put").sha))

    store.put_many([("users", f"k{i}", i) for i in range(5)])

    assert [event.seq for event in store.changes("users").items] == list(range(1, 7))


def test_a_redis_restart_is_invisible_to_the_store(server_factory: Any) -> None:
    server: RedisServer = server_factory("--appendonly", "yes")
    store = MemoryStore(connect(server.url))
    store.put("users", "alice", 1)

    server.restart()

    assert store.put("users", "alice", 2, expect_version=1).version == 2
    assert [e.seq for e in store.changes("users").items] == [1, 2]


@pytest.mark.parametrize("script", scripts.available(), ids=lambda s: s.name)
def test_every_script_opens_with_a_header_of_keys_argv_and_reply(
    script: scripts.Script,
) -> None:
    header = script.source.split("\n\n", 1)[0]

    assert header.startswith(f"-- {script.filename}: ")
    for section in ("KEYS[1]", "ARGV", "Reply", "Example"):
        assert section in script.source.split("\nlocal ", 1)[0], section


def test_the_put_example_runs_with_redis_cli(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    example = scripts.load("put").example

    argv = shlex.split(example)
    subprocess.run(
        [REDIS_CLI, "-p", str(redis_server.port), *argv[1:]],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    record = MemoryStore(client).get("users", "alice")
    assert record is not None and record.value == {"name": "Alice"}
    assert client.xlen("rm:{users}:log") == 1
