"""Reading what a subscriber missed: log pages, the log's head, a snapshot."""

from __future__ import annotations

from typing import Any

from redismem import feed
from redismem.aio.execution import run
from redismem.aio.store import MemoryStore
from redismem.errors import StaleToken
from redismem.keys import NamespaceKeys
from redismem.merge import START
from redismem.models import Record
from redismem.replies import text
from redismem.server.events import OutgoingEvent
from redismem.tokens import LogPosition

SNAPSHOT_PAGE = 1000


async def head(client: Any, namespace: str) -> LogPosition | None:
    """The position after the namespace's newest event; None without a log.

    The epoch and the newest entry are read one after the other, not
    atomically; a write in between only moves the head forward, and a new
    epoch in between shows up as a stale position on the next read.
    """
    names = NamespaceKeys(namespace)
    epoch = await client.execute_command("HGET", names.meta, "epoch")
    if epoch is None:
        return None
    newest = await client.execute_command("XREVRANGE", names.log, "+", "-", "COUNT", 1)
    return _position(epoch, newest)


async def heads(client: Any, namespaces: list[str]) -> list[LogPosition | None]:
    """The heads of many namespaces, read in one pipeline (see ``head``)."""
    pipe = client.pipeline(transaction=False)
    for namespace in namespaces:
        names = NamespaceKeys(namespace)
        pipe.execute_command("HGET", names.meta, "epoch")
        pipe.execute_command("XREVRANGE", names.log, "+", "-", "COUNT", 1)
    replies = await pipe.execute()
    return [
        _position(epoch, newest)
        for epoch, newest in zip(replies[::2], replies[1::2], strict=True)
    ]


def _position(epoch: Any, newest: Any) -> LogPosition | None:
    if epoch is None:
        return None
    if not newest:
        return LogPosition(text(epoch), 0, "0-0")

    stream_id, flat = newest[0]
    if isinstance(flat, dict):
        fields = {text(k): v for k, v in flat.items()}
    else:
        fields = {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    return LogPosition(text(epoch), int(fields["seq"]), text(stream_id))


async def page_after(
    store: MemoryStore, namespace: str, position: LogPosition | None, limit: int
) -> tuple[list[OutgoingEvent], bool]:
    """One page of events after ``position`` and whether more follow.

    None reads from the start of the log. Raises StaleToken when
    ``position`` belongs to another epoch, or when the events after it
    (for None: the log's first events) were compacted away.
    """
    if position is None:
        return await _page_from_start(store, namespace)
    after = position.encode()
    page = await store.changes(namespace, after=after, limit=limit)
    return [
        OutgoingEvent.from_history(event) for event in page.items
    ], page.next is not None


async def _page_from_start(
    store: MemoryStore, namespace: str
) -> tuple[list[OutgoingEvent], bool]:
    # The change feed's history call: from its START position, unlike a
    # plain read of the log, it reports a log whose beginning was compacted.
    page = await run(store.client, feed.history(namespace, START))
    if page.stale is not None:
        raise StaleToken(namespace, "", page.epoch, page.stale)
    events = [OutgoingEvent.from_history(event) for event in page.events]
    return events, page.more


async def snapshot(
    store: MemoryStore, namespace: str
) -> tuple[LogPosition | None, list[Record]]:
    """The log's head and then every record, for a reset.

    The head is read first, so the records are at least as new as it; a
    client applies later events only when their version is newer than the
    record's, which makes replaying the overlap harmless.
    """
    position = await head(store.client, namespace)
    records: list[Record] = []
    after: str | None = None
    while True:
        page = await store.list(namespace, after=after, limit=SNAPSHOT_PAGE)
        records.extend(page.items)
        if page.next is None:
            break
        after = page.next
    return position, records
