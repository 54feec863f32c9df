"""The root ``redismem`` group, its options and the error-to-exit-code mapping."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Any, NoReturn, TypeVar

import click
import redis

from redismem.connection import connect
from redismem.errors import PreconditionFailed, RedisMemError, StaleToken

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "redis://localhost:6379/0"

#: Exit codes: 1 bad input, 2 usage (click's own), 3 precondition failed,
#: 4 stale token, 5 Redis unreachable or failing, 6 no such record.
EXIT_INVALID, EXIT_PRECONDITION, EXIT_STALE, EXIT_REDIS = 1, 3, 4, 5
EXIT_NOT_FOUND = 6


class Context:
    """What every command needs: the URL and a lazily made client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.url)
        return self._client


pass_context = click.make_pass_decorator(Context)


@click.group()
@click.option(
    "--url",
    envvar="REDISMEM_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Redis URL (env REDISMEM_URL); redis+cluster://host:port for a "
    "cluster, memory:// for the embedded mode.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log lifecycle events to stderr.")
@click.pass_context
def main(ctx: click.Context, url: str, verbose: bool) -> None:
    """redismem: a Redis-native memory store with a change feed."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(url)


def emit(item: Any) -> None:
    """Print one result as one line of JSON."""
    if is_dataclass(item) and not isinstance(item, type):
        item = asdict(item)
    click.echo(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
    sys.stdout.flush()


@contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Turn expected failures into one stderr line and an exit code."""
    try:
        yield
    except PreconditionFailed as exc:
        fail(str(exc), EXIT_PRECONDITION)
    except StaleToken as exc:
        fail(str(exc), EXIT_STALE)
    except (RedisMemError, ValueError) as exc:
        fail(str(exc), EXIT_INVALID)
    except redis.ConnectionError as exc:
        fail(f"cannot reach Redis: {exc}", EXIT_REDIS)
    except redis.RedisError as exc:
        fail(f"Redis error: {exc}", EXIT_REDIS)


def fail(message: str, code: int) -> NoReturn:
    """Print one error line on stderr and exit with ``code``."""
    click.echo(f"redismem: error: {message}", err=True)
    sys.exit(code)
