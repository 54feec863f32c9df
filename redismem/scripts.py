"""Lua scripts: loaded once from the package, called by SHA.

A script call that meets ``NOSCRIPT`` (Redis restarted or ran SCRIPT FLUSH)
loads the script and retries once, so callers never see that error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Arg = str | int | float


@dataclass(frozen=True)
class Script:
    """A Lua script shipped with redismem: its name, source and SHA1."""

    name: str
    source: str
    #: The SHA1 digest Redis knows this script by.
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        # Computed once: every call sends it.
        digest = hashlib.sha1(self.source.encode()).hexdigest()
        object.__setattr__(self, "sha", digest)

    @property
    def example(self) -> str:
        """The ``redis-cli --eval`` example from the script's header, if any."""
        lines = self.source.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("-- Example")]
        if not starts:
            return ""
        example = []
        for line in lines[starts[0] + 1 :]:
            if not line.startswith("--   "):
                break
            example.append(line.removeprefix("--   ").rstrip("\\ "))
        return " ".join(part.strip() for part in example)

    @property
    def filename(self) -> str:
        """The script's file name inside ``lua/``."""
        return f"{self.name}.lua"


@cache
def script_directory() -> Traversable:
    """Where the ``.lua`` files are: inside an installed wheel, or in the checkout.

    A wheel carries them as ``redismem/lua/``; a source checkout and an
    editable install keep them in ``lua/`` beside the package.
    """
    packaged = resources.files("redismem").joinpath("lua")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "lua"


@cache
def load(name: str) -> Script:
    """Return the shipped script ``lua/<name>.lua``."""
    source = script_directory().joinpath(f"{name}.lua").read_text()
    return Script(name, source)


def available() -> list[Script]:
    """Every script shipped with redismem, by name."""
    names = sorted(
        entry.name.removesuffix(".lua")
        for entry in script_directory().iterdir()
        if entry.name.endswith(".lua")
    )
    return [load(name) for name in names]


@dataclass(slots=True)
class Call(Generic[T]):
    """One round trip to Redis, described without doing any I/O.

    Either a script call (``script`` with ``keys`` and ``args``) or a plain
    command (``command``); ``parse`` turns the raw reply into the result.
    The sync and asyncio clients run the same Call objects. (Not frozen: a
    frozen dataclass costs microseconds per write to build.)
    """

    parse: Callable[[Any], T]
    script: Script | None = None
    keys: Sequence[str] = ()
    args: Sequence[Arg] = ()
    command: Sequence[Arg] = ()

    def redis_args(self) -> tuple[Arg, ...]:
        """The arguments for ``execute_command``, EVALSHA included."""
        if self.script is None:
            return tuple(self.command)
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)
