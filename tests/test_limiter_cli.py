"""``redismem limits``: every subcommand against real Redis, JSON out."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from redismem.cli import main


def _run(url: str, *args: str) -> tuple[int, list[Any], str]:
    result = CliRunner().invoke(main, ["--url", url, "limits", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line]
    return result.exit_code, lines, result.stderr


def test_hit_and_peek_print_decisions(redis_url: str) -> None:
    first = _run(redis_url, "hit", "cli-user", "token_bucket:1/h", "quota:9/day")
    second = _run(redis_url, "hit", "cli-user", "token_bucket:1/h", "quota:9/day")
    peeked = _run(redis_url, "peek", "cli-user", "quota:9/day")

    assert first[0] == 0 and first[1][0]["allowed"] is True
    assert second[1][0]["allowed"] is False
    assert second[1][0]["limit"] == "token_bucket:1/h"
    assert peeked[1][0]["remaining"] == 8


def test_bad_notation_exits_non_zero_with_one_line_showing_the_forms(
    redis_url: str, client: Any
) -> None:
    code, out, err = _run(redis_url, "hit", "cli-user", "token_bucket:ten/s")

    assert code == 1 and out == []
    assert err.count("\n") == 1 and "accepted forms" in err
    assert list(client.scan_iter()) == []


def test_set_show_and_hit_a_policy(redis_url: str) -> None:
    code, out, _ = _run(redis_url, "set", "api", "read", "token_bucket:1/h")
    _run(redis_url, "set", "api", "*", "fixed_window:5/s", "quota:100/month")
    _, shown, _ = _run(redis_url, "show", "api")
    _, everything, _ = _run(redis_url, "show")
    hits = [
        _run(redis_url, "hit", "u", "--policy", "api", "--op", "read")[1][0]
        for _ in range(2)
    ]

    assert code == 0 and out[0]["operations"] == {"read": "token_bucket:1/h"}
    assert shown[0]["operations"]["*"] == "fixed_window:5/s; quota:100/month"
    assert everything == shown
    assert [hit["allowed"] for hit in hits] == [True, False]


def test_allow_deny_lists_and_reset(redis_url: str) -> None:
    _, denied, _ = _run(redis_url, "deny", "mallory", "eve")
    _, hit, _ = _run(redis_url, "hit", "mallory", "fixed_window:5/s")
    _, listed, _ = _run(redis_url, "deny")
    _run(redis_url, "deny", "--remove", "eve")
    _, allowed, _ = _run(redis_url, "allow", "trent")
    _, still, _ = _run(redis_url, "deny")
    _run(redis_url, "hit", "sybil", "token_bucket:1/h")
    _, reset, _ = _run(redis_url, "reset", "sybil")
    _, again, _ = _run(redis_url, "hit", "sybil", "token_bucket:1/h")

    assert denied == [
        {"subject": "mallory", "list": "deny"},
        {"subject": "eve", "list": "deny"},
    ]
    assert hit[0]["reason"] == "denied"
    assert listed == [{"list": "deny", "subjects": ["eve", "mallory"]}]
    assert allowed == [{"subject": "trent", "list": "allow"}]
    assert still == [{"list": "deny", "subjects": ["mallory"]}]
    assert reset[0]["deleted_keys"] >= 1
    assert again[0]["allowed"] is True


def test_usage_shows_a_subject_and_the_top_refused(redis_url: str) -> None:
    for _ in range(3):
        _run(redis_url, "hit", "zed", "token_bucket:1/h", "--op", "write")

    _, usage, _ = _run(redis_url, "usage", "zed", "--minutes", "1", "--days", "1")
    _, top, _ = _run(redis_url, "usage")

    assert usage[0]["days"][0]["operations"]["write"]["refused"] == 2
    assert top == [{"top_refused": [{"subject": "zed", "refused": 2}]}]
