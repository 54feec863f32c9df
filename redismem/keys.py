"""The one place that names Redis keys and channels.

Every key of a namespace carries the hash tag ``{<namespace>}``, so all of them
live in one cluster slot and each script touches a single slot. The namespace
directory spans slots; it is written idempotently outside the atomic path.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "rm"

#: Set of every namespace that has a log; spans slots, so it is written by the
#: client after the write that started the log, never inside a script.
NAMESPACE_DIRECTORY = f"{PREFIX}:namespaces"

#: Classic pub/sub channel prefix; PUBLISH reaches subscribers on every node
#: of a cluster, and PSUBSCRIBE on this prefix gives wildcard subscriptions.
CHANNEL_PREFIX = f"{PREFIX}:ch:"


@dataclass(frozen=True)
class NamespaceKeys:
    """The Redis keys and channel of one namespace."""

    namespace: str

    @property
    def records(self) -> str:
        """Hash: record key -> record JSON (version, created, updated, value)."""
        return f"{PREFIX}:{{{self.namespace}}}:records"

    @property
    def index(self) -> str:
        """Sorted set of live keys, all scored 0, for ordered paging."""
        return f"{PREFIX}:{{{self.namespace}}}:keys"

    @property
    def meta(self) -> str:
        """Hash with the log's ``epoch`` and last ``seq``."""
        return f"{PREFIX}:{{{self.namespace}}}:meta"

    @property
    def log(self) -> str:
        """Stream of change events."""
        return f"{PREFIX}:{{{self.namespace}}}:log"

    @property
    def channel(self) -> str:
        """Pub/sub channel on which each change event is published."""
        return f"{CHANNEL_PREFIX}{self.namespace}"


def channel_namespace(channel: str) -> str:
    """Return the namespace a change channel belongs to."""
    return channel[len(CHANNEL_PREFIX) :]


# Realtime server ------------------------------------------------------------

#: Pub/sub channel each server process keeps subscribed, so its link to Redis
#: stays in subscribed mode (and answers PINGs) even with no client listening.
SERVER_CHANNEL = f"{PREFIX}:server"
