"""The ``redismem`` command: records, change log, scripts, demo (and more).

Each command group lives in its own module and is attached to ``main`` here.
Output is JSON, one object per line; errors print one line on stderr and exit
non-zero.
"""

from __future__ import annotations

from redismem.cli import demo, feed, limits, records, serve  # noqa: F401
from redismem.cli.app import main

__all__ = ["main"]
