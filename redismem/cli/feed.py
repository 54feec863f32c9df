"""CLI commands on the change feed: changes (paging or following), replay,
compact, stats."""

from __future__ import annotations

import signal
import time
from dataclasses import asdict
from types import FrameType
from typing import Any

import click

from redismem.cli.app import Context, emit, errors_as_exit_codes, main, pass_context
from redismem.merge import is_glob
from redismem.models import ChangeEvent, Op
from redismem.operations import OPS
from redismem.store import MemoryStore


def _store(context: Context) -> MemoryStore:
    return MemoryStore(context.client)


def _item(item: Any) -> dict[str, Any]:
    """An event or a reset as one JSON object, its kind under "type"."""
    kind = "event" if isinstance(item, ChangeEvent) else "reset"
    return {"type": kind, **asdict(item)}


@main.command()
@click.argument("pattern")
@click.option("--follow", is_flag=True, help="Keep following live changes.")
@click.option("--resume", metavar="TOKEN", help="With --follow: continue here.")
@click.option(
    "--from",
    "start",
    type=click.Choice(["now", "earliest"]),
    default="now",
    show_default=True,
    help="With --follow and no --resume: where to start.",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after N items.")
@click.option(
    "--idle",
    type=click.FloatRange(min=0),
    help="With --follow: stop after SECONDS without an item.",
)
@click.option("--after", metavar="TOKEN", help="Page after this token.")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Events per page read.",
)
@click.option("--op", "ops", multiple=True, type=click.Choice(list(OPS)))
@click.option("--key", help="Exact key, or a prefix ending in '*'.")
@click.option("--since", type=int, help="Earliest event time, Redis ms.")
@click.option("--until", type=int, help="Latest event time, Redis ms.")
@click.option("--reverse", is_flag=True, help="Newest first.")
@pass_context
def changes(
    context: Context,
    pattern: str,
    follow: bool,
    resume: str | None,
    start: str,
    count: int | None,
    idle: float | None,
    after: str | None,
    limit: int,
    ops: tuple[Op, ...],
    key: str | None,
    since: int | None,
    until: int | None,
    reverse: bool,
) -> None:
    """Print change events of PATTERN, one JSON object per line.

    Without --follow, PATTERN is one namespace: its events (filtered, read
    page by page) are printed, and {"next": TOKEN} last when --count stopped
    before the end. With --follow, PATTERN may be a glob; events and resets
    are printed as they come, and on exit (Ctrl-C, SIGTERM, --count, --idle)
    the last line is {"resume_token": TOKEN}. --after TOKEN (an event's
    token) also resumes --follow on one namespace.
    """
    with errors_as_exit_codes():
        store = _store(context)
        if follow:
            _follow(store, pattern, resume or after, start, count, idle)
            return
        if is_glob(pattern):
            raise click.UsageError("paging reads one namespace; use --follow for globs")

        printed = 0
        while count is None or printed < count:
            page = store.changes(
                pattern,
                after=after,
                limit=limit if count is None else min(limit, count - printed),
                ops=ops or None,
                key=key,
                since=since,
                until=until,
                reverse=reverse,
            )
            for event in page.items:
                emit(_item(event))
            printed += len(page.items)
            after = page.next
            if after is None:
                return
        emit({"next": after})


class _Stop(BaseException):
    """SIGTERM asks ``--follow`` to stop and print its resume token.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception``
    on the way (in redis-py's socket reads) swallows it.
    """


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _follow(
    store: MemoryStore,
    pattern: str,
    resume: str | None,
    start: str,
    count: int | None,
    idle: float | None,
) -> None:
    """Print items until told to stop, then the resume token."""
    previous = signal.signal(signal.SIGTERM, _stop)
    subscription = store.subscribe(pattern, resume=resume, start=start)
    try:
        printed, last = 0, time.monotonic()
        while count is None or printed < count:
            wait = None if idle is None else idle - (time.monotonic() - last)
            if wait is not None and wait <= 0:
                break
            item = subscription.get(timeout=wait)
            if item is None:
                continue
            emit(_item(item))
            printed, last = printed + 1, time.monotonic()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        subscription.close()
    emit({"resume_token": subscription.resume_token})


@main.command()
@click.argument("namespace")
@click.option("--until", help="A change-log token, or a Redis time in ms.")
@pass_context
def replay(context: Context, namespace: str, until: str | None) -> None:
    """Rebuild NAMESPACE's records from its log; one record per line."""
    with errors_as_exit_codes():
        point: str | int | None = until
        if until is not None and until.isdigit():
            point = int(until)
        for record in _store(context).replay(namespace, until=point).values():
            emit(record)


@main.command()
@click.argument("namespace")
@pass_context
def compact(context: Context, namespace: str) -> None:
    """Compact NAMESPACE's log now and print what was done."""
    with errors_as_exit_codes():
        emit(_store(context).compact(namespace))


@main.command()
@click.argument("pattern", default="*")
@pass_context
def stats(context: Context, pattern: str) -> None:
    """Per namespace matching PATTERN: events, first and last seq, epoch, memory."""
    with errors_as_exit_codes():
        for line in _store(context).stats(pattern):
            emit(line)
