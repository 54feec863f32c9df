"""The fan-out: one pub/sub link per process, each event encoded once.

The hub keeps one Redis pub/sub connection and listens on exactly the
channels (exact namespaces) and channel patterns (prefixes) its clients
subscribed to. Every published change is parsed once into an
:class:`OutgoingEvent` whose bytes every subscribed connection gets, written
synchronously from the reading loop; only a slow consumer's own buffer grows,
and it is evicted past its bound.

A new subscriber is registered first and catches up second: live events that
arrive while it reads the log are buffered for it and merged
(:mod:`redismem.server.recovery`), so it goes live without a gap. Reading
the log can outrun pub/sub, so a subscriber may go live holding events the
live stream has not brought yet; it skips those once (``Connection.ahead``),
and no subscriber goes live while read events wait to be dispatched. When the
link drops, every connection is closed with the "resume" code: clients
reconnect (here or to another instance) and resume from their tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.exceptions

from redismem.aio.store import MemoryStore
from redismem.errors import StaleToken
from redismem.keys import SERVER_CHANNEL
from redismem.server import history, protocol
from redismem.server.backpressure import Connection, ConnectionGone
from redismem.server.events import EventBatch, OutgoingEvent
from redismem.server.metrics import Metrics
from redismem.server.patterns import Pattern
from redismem.server.protocol import ProtocolError
from redismem.server.recovery import Merger, Outcome, Sequencer, Verdict
from redismem.tokens import decode_log_token

logger = logging.getLogger(__name__)

HISTORY_PAGE = 200
LISTEN_TIMEOUT = 5.0
#: The link is probed with PING after this much silence, and declared dead
#: after three times as much.
PROBE_SECONDS = 1.0
#: At most this many messages already read are fanned out together.
MAX_BATCH = 256
_DATA = frozenset(("message", "pmessage", b"message", b"pmessage"))
_CONFIRMATIONS = frozenset(("subscribe", "psubscribe", b"subscribe", b"psubscribe"))


class Route:
    """The connections listening on one pattern, and those still joining."""

    __slots__ = ("conns", "joins", "pattern", "ready")

    def __init__(self, pattern: Pattern) -> None:
        self.pattern = pattern
        self.conns: dict[Connection, None] = {}
        self.joins: list[Join] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def empty(self) -> bool:
        """Whether nobody listens here any more."""
        return not self.conns and not self.joins


class Join:
    """A subscriber catching up: live events are held until history is out.

    With ``adopt`` (a wildcard resume), a namespace first seen in a live
    event gets a merger from the start of its log: the subscriber cannot
    have seen it, so its earlier events are replayed, not skipped.
    """

    def __init__(
        self, conn: Connection, mergers: dict[str, Merger], *, adopt: bool = False
    ) -> None:
        self.conn = conn
        self.mergers = mergers
        self.adopt = adopt
        self.passthrough: list[OutgoingEvent] = []

    def offer(self, event: OutgoingEvent) -> None:
        """Buffer a live event for the merge."""
        merger = self.mergers.get(event.namespace)
        if merger is None and self.adopt:
            merger = self.mergers[event.namespace] = Merger(event.namespace, None)
        if merger is None:
            self.passthrough.append(event)
        else:
            merger.offer_live(event)


class Hub:
    """Routes published change events to subscribed connections."""

    def __init__(
        self,
        store: MemoryStore,
        pubsub_client: Any,
        metrics: Metrics,
        *,
        max_replay: int = 10_000,
    ) -> None:
        self.store = store
        self.pubsub_client = pubsub_client
        self.metrics = metrics
        self.max_replay = max_replay
        self.exact: dict[str, Route] = {}
        self.prefixes: dict[str, Route] = {}
        self.sequencer = Sequencer()
        self.connected = False
        self.connections: set[Connection] = set()
        self._pubsub: Any = None
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._linked = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # Lifecycle ----------------------------------------------------------

    async def start(self, wait: float = LISTEN_TIMEOUT) -> None:
        """Start the reading loop and wait (a bounded time) for the link."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._linked.wait(), wait)

    async def stop(self) -> None:
        """Stop reading and close the link."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close_pubsub()

    def close_all(self, code: int, reason: str) -> None:
        """Close every client connection (shutdown, or the feed broke)."""
        for conn in list(self.connections):
            conn.close(code, reason)

    # Subscriptions ------------------------------------------------------

    async def subscribe(
        self,
        conn: Connection,
        pattern: Pattern,
        resume: dict[str, str | None] | None,
        *,
        coalesce: bool = False,
    ) -> None:
        """Subscribe ``conn``: acknowledge, replay what it missed, go live.

        ``resume`` None is live from now; a mapping resumes each namespace
        after its token, and every other namespace the pattern matches
        (a None token, one left out, one created meanwhile) from the start
        of its log.
        """
        if pattern.text in conn.patterns:
            raise ProtocolError(
                protocol.ALREADY_SUBSCRIBED, "already subscribed", pattern.text
            )

        route = await self._route(pattern)
        resuming = resume is not None
        mergers = {
            ns: Merger(ns, None if token is None else decode_log_token(token))
            for ns, token in (resume or {}).items()
        }
        join = Join(conn, mergers, adopt=resuming and not pattern.exact)
        route.joins.append(join)
        conn.patterns.add(pattern.text)
        if coalesce:
            conn.coalesce(pattern, self.metrics.coalesced)
        self.metrics.subscriptions.inc()

        try:
            await self._place(join, pattern, resuming=resuming)
            await self._catch_up(route, join, pattern, resuming=resuming)
        except BaseException:
            self._leave(conn, pattern)
            raise

    async def _place(self, join: Join, pattern: Pattern, *, resuming: bool) -> None:
        """Give every namespace the pattern matches now a merger.

        The join is registered before this runs: every later event is
        buffered, so none falls between the positions read here and going
        live. Without a resume a namespace starts at its head (so the
        acknowledgement lists a position for each); with one, a namespace
        the resume leaves out starts from the beginning of its log.
        """
        if pattern.exact:
            found = [pattern.prefix]
        else:
            found = await self.store.namespaces(pattern.prefix + "*")
        new = [ns for ns in found if ns not in join.mergers]
        for namespace in new:
            join.mergers[namespace] = Merger(namespace, None)
        if resuming or not new:
            return

        heads = await history.heads(self.store.client, new)
        for namespace, head in zip(new, heads, strict=True):
            join.mergers[namespace].rebase(head)

    def unsubscribe(self, conn: Connection, pattern: Pattern) -> None:
        """Stop delivering ``pattern`` to ``conn``."""
        if pattern.text not in conn.patterns:
            raise ProtocolError(protocol.NOT_SUBSCRIBED, "not subscribed", pattern.text)
        self._leave(conn, pattern)

    def disconnect(self, conn: Connection) -> None:
        """Forget a closed connection and all its subscriptions."""
        for text in list(conn.patterns):
            route = self.exact.get(text) or self._prefix_route(text)
            if route is not None:
                self._leave(conn, route.pattern)
        self.connections.discard(conn)

    def _prefix_route(self, text: str) -> Route | None:
        if not text.endswith("*"):
            return None
        return self.prefixes.get(text[:-1])

    def _leave(self, conn: Connection, pattern: Pattern) -> None:
        if pattern.text not in conn.patterns:
            return
        conn.patterns.discard(pattern.text)
        if conn.coalescer is not None:
            conn.coalescer.remove(pattern)
        self.metrics.subscriptions.dec()
        routes = self.exact if pattern.exact else self.prefixes
        route = routes.get(pattern.prefix)
        if route is None:
            return
        route.conns.pop(conn, None)
        route.joins = [join for join in route.joins if join.conn is not conn]
        if route.empty():
            del routes[pattern.prefix]
            self._forget_unheard(pattern)
            asyncio.get_running_loop().create_task(self._unlisten(pattern))

    def _forget_unheard(self, pattern: Pattern) -> None:
        """Forget the live positions of namespaces only ``pattern`` hears.

        Their live stream pauses (nobody listens any more) or is only now
        starting (messages still in flight from an earlier listen may have
        left a position behind): a position from before would report a
        false gap. Namespaces another listening route hears keep theirs, so
        duplicates of their messages are still recognised.
        """
        others = [
            route.pattern
            for route in (*self.exact.values(), *self.prefixes.values())
            if route.pattern != pattern and route.ready.done()
        ]
        self.sequencer.forget(
            lambda ns: pattern.matches(ns) and not any(p.matches(ns) for p in others)
        )

    async def _route(self, pattern: Pattern) -> Route:
        routes = self.exact if pattern.exact else self.prefixes
        route = routes.get(pattern.prefix)
        if route is None:
            route = routes[pattern.prefix] = Route(pattern)
            try:
                await self._listen(pattern)
            except BaseException as exc:
                routes.pop(pattern.prefix, None)
                if not route.ready.done():
                    route.ready.set_exception(exc)
                    route.ready.exception()  # retrieved: later joiners re-raise it
                raise
            self._forget_unheard(pattern)
            route.ready.set_result(None)
        else:
            await asyncio.shield(route.ready)
        return route

    async def _listen(self, pattern: Pattern) -> None:
        if not self.connected:
            raise ProtocolError(
                protocol.UNAVAILABLE, "the change feed is down; retry", pattern.text
            )
        confirmed = asyncio.get_running_loop().create_future()
        self._pending[pattern.channel] = confirmed
        try:
            if pattern.exact:
                await self._pubsub.subscribe(pattern.channel)
            else:
                await self._pubsub.psubscribe(pattern.channel)
            await asyncio.wait_for(confirmed, LISTEN_TIMEOUT)
        except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError):
            raise ProtocolError(
                protocol.UNAVAILABLE, "the change feed is down; retry", pattern.text
            ) from None
        finally:
            self._pending.pop(pattern.channel, None)

    async def _unlisten(self, pattern: Pattern) -> None:
        if not self.connected or pattern.prefix in (
            self.exact if pattern.exact else self.prefixes
        ):
            return
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            if pattern.exact:
                await self._pubsub.unsubscribe(pattern.channel)
            else:
                await self._pubsub.punsubscribe(pattern.channel)

    # Catching up --------------------------------------------------------

    async def _catch_up(
        self, route: Route, join: Join, pattern: Pattern, *, resuming: bool
    ) -> None:
        conn = join.conn
        first_pages: dict[str, tuple[list[OutgoingEvent], bool] | None] = {}
        # A copy: a wildcard resume adopts namespaces while this awaits.
        for namespace, merger in list(join.mergers.items()):
            if not resuming:
                # Placed at its head after the join was registered: all that
                # follows arrives live, so there is no history to read.
                first_pages[namespace] = ([], False)
                continue
            try:
                page = await history.page_after(
                    self.store, namespace, merger.position, HISTORY_PAGE
                )
            except StaleToken:
                page = None
            if page is not None and merger.misses(page[0]):
                page = None  # the events it needs were compacted away
            first_pages[namespace] = page

        recovered = resuming and all(page is not None for page in first_pages.values())
        if resuming:
            self.metrics.resumes.labels("recovered" if recovered else "reset").inc()
        # Where delivery goes on from; None for "from the start of the log":
        # an empty log, one the subscriber never saw, or a stale token (a
        # reset with a fresh token follows).
        positions = {
            ns: merger.position.encode()
            if merger.position and first_pages.get(ns)
            else None
            for ns, merger in join.mergers.items()
        }
        conn.send(
            protocol.subscribed(pattern, recovered, positions),
            event="subscribed",
            event_id=conn.acknowledged(positions),
        )

        for namespace, page in first_pages.items():
            merger = join.mergers[namespace]
            if page is None:
                await self._reset(conn, merger)
            else:
                await self._replay(conn, merger, *page)

        while True:
            while not self._idle.is_set():
                # Events read from the link are about to be dispatched; going
                # live now would push some the history already delivered.
                await self._idle.wait()
            pending = self._drain(join)
            if pending is None:
                # Synchronous from the last drain: no event can slip between.
                self._go_live(route, join)
                return
            merger, outcome = pending
            if conn.closed:
                raise ConnectionGone("closed while catching up")
            if outcome is Outcome.STALE:
                await self._reset(conn, merger)
            else:
                try:
                    events, more = await history.page_after(
                        self.store, merger.namespace, merger.position, HISTORY_PAGE
                    )
                except StaleToken:
                    await self._reset(conn, merger)
                else:
                    await self._replay(conn, merger, events, more)

    def _go_live(self, route: Route, join: Join) -> None:
        """Move a caught-up subscriber from the joins to the live connections.

        The log can be read before pub/sub brings the same events here, so a
        subscriber may already hold events the live stream has not reached:
        its ``ahead`` entry makes the fan-out skip those once.
        """
        conn = join.conn
        for namespace, merger in join.mergers.items():
            position = merger.position
            if position is None:
                continue
            live = self.sequencer.position(namespace)
            if live is None or live[0] != position.epoch or live[1] < position.seq:
                conn.ahead[namespace] = (position.epoch, position.seq)
        route.joins.remove(join)
        route.conns[conn] = None

    def _drain(self, join: Join) -> tuple[Merger, Outcome] | None:
        for merger in join.mergers.values():
            delivered, outcome = merger.drain()
            for event in delivered:
                join.conn.replay(event)
            if outcome is not Outcome.DONE:
                return merger, outcome
        for event in join.passthrough:
            join.conn.replay(event)
        join.passthrough.clear()
        return None

    async def _replay(
        self, conn: Connection, merger: Merger, events: list[OutgoingEvent], more: bool
    ) -> None:
        replayed = 0
        while True:
            for event in merger.take_history(events):
                conn.replay(event)
                replayed += 1
            await conn.writable()
            if conn.closed:
                raise ConnectionGone("closed while catching up")
            if merger.misses(events):
                await self._reset(conn, merger)
                return
            if not more:
                return
            if replayed >= self.max_replay:
                # Too far behind to replay: a snapshot is cheaper.
                await self._reset(conn, merger)
                return
            try:
                events, more = await history.page_after(
                    self.store, merger.namespace, merger.position, HISTORY_PAGE
                )
            except StaleToken:
                await self._reset(conn, merger)
                return

    async def _reset(self, conn: Connection, merger: Merger) -> None:
        position, records = await history.snapshot(self.store, merger.namespace)
        token = position.encode() if position else None
        conn.send(
            protocol.reset(merger.namespace, token, records),
            event="reset",
            event_id=conn.reset_id(merger.namespace, position),
        )
        merger.rebase(position)
        await conn.writable()

    # The link -------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._connect_and_read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    logger.warning("pub/sub link to Redis lost: %s", exc)
                else:
                    logger.debug("pub/sub link not up: %s", exc)
            self._link_lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _connect_and_read(self) -> None:
        pubsub = self._pubsub = self.pubsub_client.pubsub()
        await pubsub.subscribe(SERVER_CHANNEL)
        last_heard = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=PROBE_SECONDS)
            now = time.monotonic()
            if message is None:
                silent = now - last_heard
                if silent > 3 * PROBE_SECONDS:
                    raise ConnectionError(f"no answer from Redis for {silent:.1f}s")
                if silent > PROBE_SECONDS:
                    await pubsub.ping()
                continue

            last_heard = now
            batch: list[bytes] = []
            # Events read but not yet dispatched reach no join's buffer: a
            # subscriber must not go live meanwhile (see _catch_up).
            self._idle.clear()
            while message is not None:
                kind = message["type"]
                if kind in _DATA:
                    batch.append(message["data"])
                elif kind in _CONFIRMATIONS:
                    self._confirmed(message)
                if len(batch) >= MAX_BATCH:
                    break
                # Whatever the link already holds goes out in this round.
                message = await pubsub.get_message(timeout=0.0)
            if batch:
                self.dispatch(batch)
            self._idle.set()

    def _confirmed(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        if channel == SERVER_CHANNEL and not self.connected:
            self.connected = True
            self.metrics.pubsub_up.set(1)
            self._linked.set()
            logger.info("pub/sub link to Redis up")
        confirmed = self._pending.get(channel)
        if confirmed is not None and not confirmed.done():
            confirmed.set_result(None)

    def _link_lost(self) -> None:
        self._idle.set()
        was_connected = self.connected
        self.connected = False
        self._linked.clear()
        self.metrics.pubsub_up.set(0)
        self.sequencer.clear()
        for confirmed in self._pending.values():
            if not confirmed.done():
                confirmed.set_exception(ConnectionError("pub/sub link lost"))
                confirmed.exception()
        if was_connected:
            # Events published while the link was down never reach us: every
            # subscriber must resume from its token, here or elsewhere.
            self.close_all(protocol.CLOSE_RESUME, "change feed interrupted: resume")
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            asyncio.get_running_loop().create_task(_close_quietly(pubsub))

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            await _close_quietly(self._pubsub)
            self._pubsub = None

    # The hot path ---------------------------------------------------------

    def dispatch(self, messages: list[bytes]) -> None:
        """Deliver published changes to every connection that listens.

        Consecutive events bound for the same routes are written to each
        connection together, so one socket write carries them all.
        """
        groups: list[tuple[list[Route], list[OutgoingEvent]]] = []
        for raw in messages:
            event = OutgoingEvent.from_published(raw)
            matched = self._accept(event)
            if not matched:
                continue
            if groups and groups[-1][0] == matched:
                groups[-1][1].append(event)
            else:
                groups.append((matched, [event]))

        now = time.time()
        for matched, events in groups:
            if len(matched) == 1:
                conns = matched[0].conns
            else:
                # A connection listening on two matching patterns gets it once.
                conns = {}
                for route in matched:
                    conns.update(route.conns)
            if len(events) == 1:
                for conn in conns:
                    if conn.ahead:
                        _push_after(conn, events)
                    else:
                        conn.push(events[0])
            else:
                batch = EventBatch(events)
                for conn in conns:
                    if conn.ahead:
                        _push_after(conn, events)
                    else:
                        conn.push_batch(batch)

            self.metrics.delivered.inc(len(conns) * len(events))
            for event in events:
                self.metrics.lag.observe(max(0.0, now - event.ts / 1000))

    def _accept(self, event: OutgoingEvent) -> list[Route]:
        """The routes ``event`` goes to; joining subscribers buffer it here."""
        verdict = self.sequencer.check(event)
        if verdict is Verdict.DUPLICATE:
            return []

        namespace = event.namespace
        matched = []
        route = self.exact.get(namespace)
        if route is not None:
            matched.append(route)
        for prefix, prefix_route in self.prefixes.items():
            if namespace.startswith(prefix):
                matched.append(prefix_route)

        if verdict is Verdict.BROKEN and matched:
            logger.warning("change stream of %r broke (gap or new epoch)", namespace)
            for broken in matched:
                for conn in broken.conns:
                    conn.close(protocol.CLOSE_RESUME, "change stream broke: resume")
        for matched_route in matched:
            for join in matched_route.joins:
                join.offer(event)
        return matched


def _push_after(conn: Connection, events: list[OutgoingEvent]) -> None:
    """Push only the events ``conn`` does not already have from history."""
    for event in events:
        held = conn.ahead.get(event.namespace)
        if held is not None:
            if event.epoch == held[0] and event.seq <= held[1]:
                continue
            del conn.ahead[event.namespace]
        conn.push(event)


async def _close_quietly(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
