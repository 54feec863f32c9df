"""Connections a store borrows from its ``redis.Redis`` pool and keeps between calls.

For one short command, redis-py spends more client time around the round
trip than on it: the pool checks a connection out and back in (a lock, a
readiness poll, metrics hooks), and ``execute_command`` builds a retry
closure and records metrics per call. A script call is one EVALSHA whose
reply needs no response callback, so a store sends its script calls on
connections it borrowed once and keeps:

- each is borrowed from the client's own pool, so the pool counts it,
  ``client.close()`` disconnects it, and the client's settings (db, auth,
  TLS, timeouts, retry) apply to it;
- idle ones wait on a stack (``list.pop``/``append`` are atomic), so two
  threads never share a connection;
- like the pool, it polls an idle connection before use and reconnects one
  the server closed (a restart); a connection error disconnects it and
  retries as the connection's ``Retry`` says, as ``execute_command`` would;
  redis-py drops a connection whose reply was not read in full;
- commands are packed with hiredis, which redis-py itself uses for that
  when it is installed, without redis-py's per-argument type checks;
- a forked child borrows its own; when the store is garbage-collected its
  connections go back to the pool.

Only a plain ``redis.Redis`` with a connection pool qualifies; every other
client (a cluster, fakeredis, a single-connection client, a pipeline, a
client with client-side caching) runs its commands through
``execute_command`` as usual.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

# Maintenance notifications (redis-py 6+) may ask for a reconnect after a
# command; older connections have no such flag.
_HAS_RECONNECT_FLAG = hasattr(AbstractConnection, "should_reconnect")


class HeldConnections:
    """The connections one store borrowed from one pool, idle ones on a stack."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.idle: list[Any] = []
        weakref.finalize(self, _give_back, pool, self.idle)

    def execute(self, *args: Any) -> Any:
        """Send one command and return its raw reply (no response callback)."""
        # Packed here with hiredis, as redis-py does when hiredis is installed
        # (redismem depends on it), minus redis-py's per-argument checks: the
        # arguments are redismem's own str and int values.
        return self._exchange([hiredis.pack_command(args)], _read_reply)

    def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands in one write and read their replies, in order.

        An error reply is returned as its exception, in place, not raised, as
        a redis-py pipeline does with ``raise_on_error=False``.
        """
        packed = [b"".join([hiredis.pack_command(tuple(c)) for c in commands])]
        count = len(commands)
        replies: list[Any] = self._exchange(
            packed, lambda connection: _read_replies(connection, count)
        )
        return replies

    def _exchange(self, packed: list[bytes], read: Callable[[Any], Any]) -> Any:
        """Send ``packed`` on an idle connection and ``read`` the reply."""
        if self.pid != os.getpid():
            self._forget_parent_connections()
        try:
            connection = self.idle.pop()
        except IndexError:
            connection = _borrow(self.pool)
        else:
            # As the pool checks on checkout: a connection with something to
            # read was closed by the server (a restart) or is out of step;
            # start it afresh (sending reconnects).
            _make_ready(connection)

        try:
            return connection.retry.call_with_retry(
                lambda: _send_and_read(connection, packed, read),
                lambda _error: connection.disconnect(),
            )
        finally:
            if _HAS_RECONNECT_FLAG and connection.should_reconnect():
                connection.disconnect()
            self.idle.append(connection)

    def _forget_parent_connections(self) -> None:
        # The parent process still uses these sockets: drop them unused (the
        # pool resets itself in the child too) and borrow fresh ones.
        self.idle.clear()
        self.pid = os.getpid()


def for_client(client: Any) -> HeldConnections | None:
    """Held connections for ``client``, or None when it does not qualify."""
    if type(client) is not redis.Redis or client.connection is not None:
        return None
    pool = client.connection_pool
    if getattr(pool, "cache", None) is not None:
        # Client-side caching tracks keys per command; leave it to redis-py.
        return None
    return HeldConnections(pool)


def _borrow(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:
        # redis-py before 5.3 wants a command name here.
        return pool.get_connection("EVALSHA")


def _make_ready(connection: Any) -> None:
    try:
        if not connection.can_read():
            return
    except (ConnectionError, TimeoutError, OSError):
        pass
    connection.disconnect()


def _send_and_read(
    connection: Any, packed: list[bytes], read: Callable[[Any], Any]
) -> Any:
    connection.send_packed_command(packed)
    return read(connection)


def _read_reply(connection: Any) -> Any:
    return connection.read_response()


def _read_replies(connection: Any, count: int) -> list[Any]:
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies


def _give_back(pool: Any, idle: list[Any]) -> None:
    while idle:
        pool.release(idle.pop())
