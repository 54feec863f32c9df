"""The ``redismem`` command: JSON lines out, one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from redismem import MemoryStore
from redismem.cli import main
from redismem.cli.app import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_PRECONDITION,
    EXIT_REDIS,
)
from tests.servers import free_port


@pytest.fixture
def cli(redis_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(main, ["--url", redis_url, *args], input=input)

    return invoke


def _lines(output: str) -> list[Any]:
    return [json.loads(line) for line in output.splitlines()]


def test_put_then_get_prints_the_record_as_one_json_line(cli: Any) -> None:
    put = cli("put", "users", "alice", '{"name": "Alice"}')
    got = cli("get", "users", "alice")

    assert put.exit_code == 0 and got.exit_code == 0
    assert _lines(got.output) == _lines(put.output)
    assert _lines(got.output)[0]["value"] == {"name": "Alice"}
    assert _lines(got.output)[0]["version"] == 1


def test_put_reads_the_value_from_stdin_with_a_dash(cli: Any) -> None:
    result = cli("put", "users", "bob", "-", input="[1, 2]")

    assert _lines(result.output)[0]["value"] == [1, 2]


def test_list_and_changes_print_one_object_per_line(cli: Any) -> None:
    for key in ["b", "a", "c"]:
        cli("put", "notes", key, "1")
    cli("delete", "notes", "b")

    listed = _lines(cli("list", "notes").output)
    changes = _lines(cli("changes", "notes").output)

    assert [record["key"] for record in listed] == ["a", "c"]
    assert [(e["op"], e["key"], e["seq"]) for e in changes] == [
        ("create", "b", 1),
        ("create", "a", 2),
        ("create", "c", 3),
        ("delete", "b", 4),
    ]


def test_changes_after_a_token_prints_only_later_events(cli: Any) -> None:
    for value in range(3):
        cli("put", "notes", "k", str(value))
    first = _lines(cli("changes", "notes").output)[0]

    later = _lines(cli("changes", "notes", "--after", first["token"]).output)

    assert [event["seq"] for event in later] == [2, 3]


def test_list_limit_caps_the_number_of_records(cli: Any, store: MemoryStore) -> None:
    store.put_many([("many", f"k{i:03d}", i) for i in range(150)])

    assert len(_lines(cli("list", "many").output)) == 150
    assert len(_lines(cli("list", "many", "--limit", "120").output)) == 120


def test_a_version_conflict_exits_3_with_one_line_on_stderr(cli: Any) -> None:
    cli("put", "users", "alice", "1")

    result = cli("put", "users", "alice", "2", "--expect-version", "5")

    assert result.exit_code == EXIT_PRECONDITION
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "redismem: error: version conflict on users/alice: expected version 5, found 1"
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("put", "bad{ns", "k", "1"),
        ("put", "users", "k", "not json"),
        ("changes", "users", "--after", "nonsense"),
    ],
)
def test_bad_input_exits_1_with_one_line_on_stderr(cli: Any, args: Any) -> None:
    result = cli(*args)

    assert result.exit_code == EXIT_INVALID
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_create_and_update_flags_enforce_existence(cli: Any) -> None:
    assert cli("put", "users", "alice", "1", "--update").exit_code == EXIT_PRECONDITION
    assert cli("put", "users", "alice", "1", "--create").exit_code == 0
    assert cli("put", "users", "alice", "1", "--create").exit_code == EXIT_PRECONDITION


def test_a_missing_record_exits_6(cli: Any) -> None:
    assert cli("get", "users", "nobody").exit_code == EXIT_NOT_FOUND
    assert cli("delete", "users", "nobody").exit_code == EXIT_NOT_FOUND


def test_scripts_lists_each_script_with_its_sha_and_an_example(cli: Any) -> None:
    scripts = _lines(cli("scripts").output)

    names = {script["name"] for script in scripts}
    assert {"put", "delete", "list", "changes"} <= names
    for script in scripts:
        assert len(script["sha"]) == 40
        assert script["example"].startswith(f"redis-cli --eval {script['file']}")


def test_an_unreachable_redis_exits_5_with_one_line_and_no_traceback() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    result = subprocess.run(
        [sys.executable, "-m", "redismem", "--url", url, "get", "users", "alice"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == EXIT_REDIS
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("redismem: error: cannot reach Redis")


def test_the_url_comes_from_redismem_url(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redismem", "put", "env", "k", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"REDISMEM_URL": redis_url, "PATH": ""},
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["value"] is True


def test_changes_follow_prints_events_written_later(
    redis_url: str, store: MemoryStore
) -> None:
    store.put("followed", "k", 0)
    follower = subprocess.Popen(
        [sys.executable, "-m", "redismem", "--url", redis_url, "changes", "followed",
         "--follow", "--from", "earliest"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        store.put("followed", "k", 1)
        store.put("followed", "k", 2)
        later = [json.loads(follower.stdout.readline()) for _ in range(2)]
    finally:
        follower.kill()
        follower.wait()

    assert [first["seq"], *(event["seq"] for event in later)] == [1, 2, 3]
    assert [event["value"] for event in later] == [1, 2]
