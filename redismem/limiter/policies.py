"""Per-operation policies, stored in Redis and reloaded while apps run.

A policy maps operation names (read, write, delete, list, subscribe, ...) to
limits, with ``*`` as the default for any other operation. Stored form, one
hash per policy, readable in ``redis-cli``::

    HGETALL rl:policy:api
    1) "read"   2) "token_bucket:10/s,burst=50; fixed_window:1000/day"
    3) "*"      4) "sliding_window:100/min"

Every change bumps ``rl:policies:version``; a limiter polls that counter at
most once per ``refresh_interval`` and reloads the policies it uses when it
moved, so every instance applies a change within that interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redismem import scripts
from redismem.errors import InvalidLimit, UnknownPolicy
from redismem.keys import POLICY_DIRECTORY, POLICY_VERSION, policy_key
from redismem.limiter.notation import (
    Limit,
    LimitLike,
    format_limits,
    parse_limits,
)
from redismem.limiter.subjects import check_operation
from redismem.replies import text
from redismem.scripts import Call

DEFAULT_OPERATION = "*"

_POLICY_NAME_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)


@dataclass(frozen=True)
class Policy:
    """A named map from operations to limits; ``*`` holds the default."""

    name: str
    operations: Mapping[str, tuple[Limit, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_policy_name(self.name)
        for operation, limits in self.operations.items():
            check_operation(operation)
            # Notation strings belong in Policy.build(); here a string would
            # otherwise be taken apart character by character later on.
            if not isinstance(limits, tuple) or not all(
                isinstance(limit, Limit) for limit in limits
            ):
                raise InvalidLimit(
                    limits,
                    "Policy takes tuples of Limit; use Policy.build() for notation",
                )

    @classmethod
    def build(
        cls,
        name: str,
        operations: Mapping[str, LimitLike | Iterable[LimitLike]],
        *,
        default: LimitLike | Iterable[LimitLike] | None = None,
    ) -> Policy:
        """A policy from notation strings or Limits, with an optional default."""
        parsed = {op: parse_limits(limits) for op, limits in operations.items()}
        if default is not None:
            parsed[DEFAULT_OPERATION] = parse_limits(default)
        return cls(name, parsed)

    def limits_for(self, operation: str) -> tuple[Limit, ...]:
        """The operation's limits, else the default; () means unlimited."""
        if operation in self.operations:
            return self.operations[operation]
        return self.operations.get(DEFAULT_OPERATION, ())

    def as_json(self) -> dict[str, Any]:
        """The policy as ``{"name": ..., "operations": {op: notation}}``."""
        return {
            "name": self.name,
            "operations": {
                op: format_limits(limits) for op, limits in self.operations.items()
            },
        }


def check_policy_name(name: object) -> str:
    """Return ``name`` if it is 1-64 of letters, digits, ``_ . -``."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 64
        or not set(name) <= _POLICY_NAME_CHARS
    ):
        raise InvalidLimit(name, "a policy name is 1-64 of letters, digits, _ . -")
    return name


def load(name: str) -> Call[Policy | None]:
    """The call that reads a stored policy; None if there is none."""
    check_policy_name(name)

    def parse(reply: Any) -> Policy | None:
        if not reply:
            return None
        pairs = reply.items() if isinstance(reply, dict) else _pairs(reply)
        return Policy(
            name, {text(op): parse_limits(text(limits)) for op, limits in pairs}
        )

    return Call(parse, command=("HGETALL", policy_key(name)))


def version() -> Call[int]:
    """The call that reads the policy version counter (0 before any change)."""
    return Call(lambda reply: int(reply or 0), command=("GET", POLICY_VERSION))


def save(policy: Policy) -> list[Call[Any]]:
    """The calls that replace a stored policy, then bump the version.

    The hash, the directory and the counter sit in different slots, so they
    are separate steps, in this order: the hash is replaced atomically by
    ``limit_policy.lua`` (readers see the old or the new policy whole), the
    directory is updated (idempotent), and last the counter moves, which is
    what makes the readers reload.
    """
    fields: list[str] = []
    for operation, limits in policy.operations.items():
        fields += [operation, format_limits(limits)]
    directory = "SADD" if fields else "SREM"
    return [
        Call(
            _ignore,
            script=scripts.load("limit_policy"),
            keys=(policy_key(policy.name),),
            args=tuple(fields),
        ),
        Call(_ignore, command=(directory, POLICY_DIRECTORY, policy.name)),
        Call(_ignore, command=("INCR", POLICY_VERSION)),
    ]


def names() -> Call[list[str]]:
    """The call that lists stored policy names."""
    return Call(
        lambda reply: sorted(text(name) for name in reply),
        command=("SMEMBERS", POLICY_DIRECTORY),
    )


class PolicyCache:
    """Policies an instance uses, and when it last asked Redis about them.

    Pure bookkeeping; the sync and asyncio limiters do the I/O. ``local``
    policies (given in code) apply when Redis holds none of that name.
    """

    def __init__(self, local: Iterable[Policy], refresh_interval: float) -> None:
        self.local = {policy.name: policy for policy in local}
        self.refresh_interval = refresh_interval
        self.version: int | None = None
        self.stored: dict[str, Policy | None] = {}
        self.checked_at = float("-inf")

    def due(self) -> bool:
        """Whether the version counter should be read again."""
        return time.monotonic() - self.checked_at >= self.refresh_interval

    def checked(self, version: int) -> list[str]:
        """Record a version read; return the names to reload (all, if it moved)."""
        self.checked_at = time.monotonic()
        if version != self.version:
            self.version = version
            stale = list(self.stored)
            self.stored.clear()
            return stale
        return []

    def loaded(self, name: str, policy: Policy | None) -> None:
        """Remember what Redis holds under ``name`` (None: nothing)."""
        self.stored[name] = policy

    def known(self, name: str) -> bool:
        """Whether ``name`` was loaded since the last version change."""
        return name in self.stored

    def resolve(self, name: str) -> Policy:
        """The policy in effect: the stored one, else the local one."""
        policy = self.stored.get(name) or self.local.get(name)
        if policy is None:
            raise UnknownPolicy(name)
        return policy


def _pairs(flat: Any) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _ignore(reply: Any) -> None:
    return None
