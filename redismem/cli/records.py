"""CLI commands on records: put, get, delete, list and scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from redismem import scripts
from redismem.cli.app import (
    EXIT_NOT_FOUND,
    Context,
    emit,
    errors_as_exit_codes,
    fail,
    main,
    pass_context,
)
from redismem.store import MemoryStore


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--expect-version", type=int, help="Write only at this version.")
@click.option("--create", "mode", flag_value="create", help="Fail if the key exists.")
@click.option("--update", "mode", flag_value="update", help="Fail if it is missing.")
@pass_context
def put(
    ctx: Context,
    namespace: str,
    key: str,
    value: str,
    expect_version: int | None,
    mode: str | None,
) -> None:
    """Write VALUE (JSON text, or - for stdin) at NAMESPACE/KEY."""
    with errors_as_exit_codes():
        parsed = _parse_json(sys.stdin.read() if value == "-" else value)
        store = MemoryStore(ctx.client)
        if mode == "create":
            record = store.create(namespace, key, parsed)
        elif mode == "update":
            record = store.update(namespace, key, parsed, expect_version=expect_version)
        else:
            record = store.put(namespace, key, parsed, expect_version=expect_version)
        emit(record)


@main.command()
@click.argument("namespace")
@click.argument("key")
@pass_context
def get(ctx: Context, namespace: str, key: str) -> None:
    """Print the record at NAMESPACE/KEY (exit 6 if there is none)."""
    with errors_as_exit_codes():
        record = MemoryStore(ctx.client).get(namespace, key)
        if record is None:
            fail(f"no record {namespace}/{key}", EXIT_NOT_FOUND)
        emit(record)


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--expect-version", type=int, help="Delete only at this version.")
@pass_context
def delete(ctx: Context, namespace: str, key: str, expect_version: int | None) -> None:
    """Delete the record at NAMESPACE/KEY (exit 6 if there is none)."""
    with errors_as_exit_codes():
        store = MemoryStore(ctx.client)
        if not store.delete(namespace, key, expect_version=expect_version):
            fail(f"no record {namespace}/{key}", EXIT_NOT_FOUND)
        emit({"namespace": namespace, "key": key, "deleted": True})


@main.command(name="list")
@click.argument("namespace")
@click.option("--after", help="Start after this key.")
@click.option("--limit", type=click.IntRange(min=1), help="Print at most N records.")
@pass_context
def list_records(
    ctx: Context, namespace: str, after: str | None, limit: int | None
) -> None:
    """Print NAMESPACE's records in key order, one per line."""
    with errors_as_exit_codes():
        store = MemoryStore(ctx.client)
        printed = 0
        while limit is None or printed < limit:
            page_size = 100 if limit is None else min(100, limit - printed)
            page = store.list(namespace, after=after, limit=page_size)
            for record in page.items:
                emit(record)
            printed += len(page.items)
            if page.next is None:
                break
            after = page.next


@main.command(name="scripts")
def list_scripts() -> None:
    """Print every Lua script: its name, SHA1, file and a redis-cli example."""
    for script in scripts.available():
        emit(
            {
                "name": script.name,
                "sha": script.sha,
                "file": f"lua/{script.filename}",
                "example": script.example,
            }
        )


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"value is not valid JSON: {exc}") from None
