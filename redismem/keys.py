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


# Rate limiter ---------------------------------------------------------------
#
# Every key of one subject carries the hash tag ``{<subject>}``, so a limiter
# script touches one cluster slot. The directories of listed subjects, the
# policies and the daily top of refused subjects span slots: the client writes
# them outside the atomic path, idempotently where it can.

LIMITER_PREFIX = "rl"

#: Sets of allow-listed and deny-listed subjects, for the CLI to show; the
#: per-subject ``acl`` key is the truth the script reads.
ALLOWED_SUBJECTS = f"{LIMITER_PREFIX}:allowed"
DENIED_SUBJECTS = f"{LIMITER_PREFIX}:denied"

#: Set of every stored policy name.
POLICY_DIRECTORY = f"{LIMITER_PREFIX}:policies"

#: Counter bumped after every policy change; instances poll it to reload.
POLICY_VERSION = f"{LIMITER_PREFIX}:policies:version"


def policy_key(name: str) -> str:
    """Hash of one stored policy: operation (``*`` = default) -> limits."""
    return f"{LIMITER_PREFIX}:policy:{name}"


def refused_top_key(day: str) -> str:
    """Sorted set of subjects scored by refused requests on ``day`` (YYYYMMDD)."""
    return f"{LIMITER_PREFIX}:top:refused:{day}"


@dataclass(frozen=True)
class SubjectKeys:
    """The Redis keys of one rate-limited subject."""

    subject: str

    @property
    def tag(self) -> str:
        """The common prefix with the subject's hash tag."""
        return f"{LIMITER_PREFIX}:{{{self.subject}}}"

    @property
    def acl(self) -> str:
        """String ``allow`` or ``deny``; absent when the subject is in neither."""
        return f"{self.tag}:acl"

    @property
    def ban(self) -> str:
        """String: the running ban's end (ms since the epoch); expires with it."""
        return f"{self.tag}:ban"

    @property
    def strikes(self) -> str:
        """Hash of backoff state: recent refusals, strikes, last ban (ms)."""
        return f"{self.tag}:strikes"

    @property
    def usage(self) -> str:
        """Prefix of the usage hashes ``<usage>:<YYYYMMDD>``, one per UTC day."""
        return f"{self.tag}:use"

    def day_usage(self, day: str) -> str:
        """Hash of usage counters on one UTC day (YYYYMMDD), minute by minute."""
        return f"{self.usage}:{day}"

    @property
    def state_pattern(self) -> str:
        """Glob matching every limit state key of the subject."""
        return f"{self.tag}:s:*"

    def state(self, operation: str, limit_id: str) -> str:
        """The state of one limit of one operation (string, or a sliding log)."""
        return f"{self.tag}:s:{operation}:{limit_id}"

    def state_totals(self, operation: str, limit_id: str) -> str:
        """A sliding window's running total and entry counter (hash)."""
        return f"{self.state(operation, limit_id)}:n"


# Change feed: compaction keeps two indexes beside the log, in the same slot.


@dataclass(frozen=True)
class FeedKeys(NamespaceKeys):
    """A namespace's keys, with the ones log compaction adds."""

    @property
    def compaction_index(self) -> str:
        """Hash: key -> ``"<seq> <stream id>"`` of its event in the compacted prefix."""
        return f"{PREFIX}:{{{self.namespace}}}:snap"

    @property
    def tombstones(self) -> str:
        """Sorted set: deleted keys in the compacted prefix, scored by delete time."""
        return f"{PREFIX}:{{{self.namespace}}}:tombs"


def channel_pattern(pattern: str) -> str:
    """The pub/sub channel pattern for a namespace glob."""
    return f"{CHANNEL_PREFIX}{pattern}"


# Realtime server ------------------------------------------------------------

#: Pub/sub channel each server process keeps subscribed, so its link to Redis
#: stays in subscribed mode (and answers PINGs) even with no client listening.
SERVER_CHANNEL = f"{PREFIX}:server"
