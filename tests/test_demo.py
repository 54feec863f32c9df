"""``redismem demo`` works with no Redis server at all."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import free_port


def test_the_demo_runs_on_the_embedded_mode_without_a_server() -> None:
    # REDISMEM_URL is unset and nothing needs to listen anywhere.
    result = subprocess.run(
        [sys.executable, "-m", "redismem", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": ""},
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "embedded mode" in lines[0]
    events = [line for line in lines if line.strip().startswith("event ")]
    assert [line.split()[2] for line in events] == [
        "create",
        "update",
        "create",
        "delete",
    ]


def test_the_demo_uses_a_server_when_one_is_named(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redismem", "--url", redis_url, "demo"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert redis_url in result.stdout.splitlines()[0]


def test_the_demo_on_an_unreachable_server_fails_cleanly() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    result = subprocess.run(
        [sys.executable, "-m", "redismem", "--url", url, "demo"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
