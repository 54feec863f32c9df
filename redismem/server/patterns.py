"""Subscription and grant patterns: an exact namespace, or a prefix and ``*``.

Only a trailing ``*`` is a wildcard, so whether one pattern covers another is
a prefix test that cannot be fooled, and each pattern maps onto one Redis
``PSUBSCRIBE``/``SUBSCRIBE`` on the change channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from redismem.errors import InvalidNamespace
from redismem.keys import CHANNEL_PREFIX
from redismem.validation import check_namespace

WILDCARD = "*"


@dataclass(frozen=True)
class Pattern:
    """A namespace (``exact``) or every namespace starting with ``prefix``."""

    text: str
    prefix: str
    exact: bool

    def matches(self, namespace: str) -> bool:
        """Whether ``namespace`` falls under this pattern."""
        if self.exact:
            return namespace == self.prefix
        return namespace.startswith(self.prefix)

    def covers(self, other: Pattern) -> bool:
        """Whether every namespace ``other`` matches is matched by this pattern."""
        if self.exact:
            return other.exact and other.prefix == self.prefix
        return other.prefix.startswith(self.prefix)

    @property
    def channel(self) -> str:
        """The Redis channel (exact) or channel pattern this pattern listens on."""
        if self.exact:
            return CHANNEL_PREFIX + self.prefix
        return CHANNEL_PREFIX + self.prefix + WILDCARD


def parse_pattern(text: object) -> Pattern:
    """Parse a pattern, raising InvalidNamespace when it is not one."""
    if not isinstance(text, str):
        raise InvalidNamespace(text, "a pattern must be a string")
    if text == WILDCARD:
        return Pattern(text, "", exact=False)
    if text.endswith(WILDCARD):
        prefix = text[:-1]
        # A prefix need not be a whole namespace ("users:" is fine), but it
        # must be the start of one: check it with a stand-in last character.
        check_namespace(prefix + "x")
        return Pattern(text, prefix, exact=False)
    return Pattern(text, check_namespace(text), exact=True)
