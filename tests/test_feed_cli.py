"""The feed's CLI commands: changes, replay, compact, stats (item 8)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

from click.testing import CliRunner

from redismem import MemoryStore
from redismem.cli import main
from redismem.connection import connect
from redismem.keys import NamespaceKeys
from redismem.tokens import decode_feed_token
from tests.feed_helpers import wait_until


def invoke(url: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``redismem --url URL ARGS``: exit code, JSON lines out, stderr."""
    result = CliRunner().invoke(main, ["--url", url, *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line]
    return result.exit_code, lines, result.stderr


def test_changes_prints_a_namespace_page_by_page_and_the_next_token(
    store: MemoryStore, redis_url: str
) -> None:
    for i in range(3):
        store.put("cli", f"k{i}", i)

    code, lines, _ = invoke(redis_url, "changes", "cli", "--count", "2")
    code2, rest, _ = invoke(redis_url, "changes", "cli", "--after", lines[-1]["next"])
    code3, every, _ = invoke(redis_url, "changes", "cli", "--limit", "1")

    assert code == code2 == code3 == 0
    assert [line["seq"] for line in lines[:-1]] == [1, 2]
    assert [line["seq"] for line in rest] == [3]
    assert [line["seq"] for line in every] == [1, 2, 3]


def test_changes_follow_prints_its_resume_token_so_a_loop_can_continue(
    store: MemoryStore, redis_url: str
) -> None:
    store.put("loop:a", "k", 0)
    store.put("loop:b", "k", 0)

    code, first, _ = invoke(
        redis_url, "changes", "loop:*", "--follow", "--from", "earliest", "--count", "2"
    )
    store.put("loop:a", "k", 1)
    code2, second, _ = invoke(
        redis_url,
        "changes",
        "loop:*",
        "--follow",
        "--resume",
        first[-1]["resume_token"],
        "--idle",
        "0.5",
    )

    assert code == code2 == 0
    assert sorted((e["namespace"], e["value"]) for e in first[:-1]) == [
        ("loop:a", 0),
        ("loop:b", 0),
    ]
    assert [(e["type"], e["namespace"], e["value"]) for e in second[:-1]] == [
        ("event", "loop:a", 1)
    ]
    assert "resume_token" in second[-1]


def test_replay_compact_and_stats_print_json_lines(
    store: MemoryStore, redis_url: str
) -> None:
    for i in range(4):
        store.put("tools", "k", i)
    token = store.changes("tools").items[1].token

    _, replayed, _ = invoke(redis_url, "replay", "tools", "--until", token)
    _, compacted, _ = invoke(redis_url, "compact", "tools")
    _, stats, _ = invoke(redis_url, "stats", "tools")

    assert [(r["key"], r["value"]) for r in replayed] == [("k", 1)]
    assert compacted[0]["compacted_seq"] == 4
    assert stats[0]["events"] == 1 and stats[0]["last_seq"] == 4


def test_bad_input_exits_non_zero_with_one_line_on_stderr(
    store: MemoryStore, redis_url: str
) -> None:
    store.put("tools", "k", 0)

    code, out, err = invoke(redis_url, "replay", "tools", "--until", "garbage")
    glob_code, _, _ = invoke(redis_url, "changes", "tools:*")

    assert code == 1 and out == []
    assert err.count("\n") == 1 and "invalid token" in err
    assert glob_code == 2


def test_sigterm_stops_changes_follow_after_printing_the_resume_token(
    store: MemoryStore, redis_url: str
) -> None:
    command = "from redismem.cli import main; main()"
    follower = subprocess.Popen(
        [sys.executable, "-c", command, "--url", redis_url, "changes", "term",
         "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        # The subscription exists once the namespace shows up as subscribed.
        wait_until(lambda: subscribed(redis_url), "the follower to subscribe")
        store.put("term", "k", 1)
        event = json.loads(follower.stdout.readline())
        follower.send_signal(signal.SIGTERM)
        last = json.loads(follower.stdout.readline())
        code = follower.wait(timeout=10)
    finally:
        follower.kill()
        follower.wait()

    assert code == 0
    assert (event["type"], event["value"]) == ("event", 1)
    assert decode_feed_token(last["resume_token"])["term"].seq == 1


def subscribed(redis_url: str) -> bool:
    """Whether some connection subscribes to the channel of "term"."""
    client = connect(redis_url)
    try:
        counts = client.pubsub_numsub(NamespaceKeys("term").channel)
        return any(count for _, count in counts)
    finally:
        client.close()
