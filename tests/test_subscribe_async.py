"""The asyncio subscription: same semantics as the sync one (item 2)."""

from __future__ import annotations

from typing import Any

import pytest

from redismem import ChangeEvent, Reset
from redismem import aio as redismem_aio
from redismem.aio.subscription import Subscription
from redismem.compaction import MANUAL_ONLY
from redismem.keys import NamespaceKeys
from redismem.merge import FeedItem

pytestmark = pytest.mark.anyio
WAIT = 5.0


async def take(subscription: Subscription, count: int) -> list[FeedItem]:
    """The next ``count`` items, failing if one does not come within WAIT s."""
    items = []
    for _ in range(count):
        item = await subscription.get(timeout=WAIT)
        assert item is not None, f"only {len(items)} of {count} items came"
        items.append(item)
    return items


def values(items: list[FeedItem]) -> list[tuple[str, str, Any]]:
    return [
        (item.namespace, item.key, item.value)
        for item in items
        if isinstance(item, ChangeEvent)
    ]


async def test_async_start_now_yields_only_later_events_in_order(
    astore: redismem_aio.MemoryStore,
) -> None:
    await astore.put("anow", "old", 0)

    async with await astore.subscribe("anow") as subscription:
        for i in range(3):
            await astore.put("anow", "k", i)
        items = await take(subscription, 3)
        assert await subscription.get(timeout=0.3) is None

    assert values(items) == [("anow", "k", 0), ("anow", "k", 1), ("anow", "k", 2)]


async def test_async_iteration_yields_history_then_live_events(
    astore: redismem_aio.MemoryStore,
) -> None:
    await astore.put("aearly", "k", 0)
    subscription = await astore.subscribe("aearly", start="earliest")
    await astore.put("aearly", "k", 1)

    seen = []
    async for item in subscription:
        seen.append(item)
        if len(seen) == 2:
            await subscription.aclose()

    assert values(seen) == [("aearly", "k", 0), ("aearly", "k", 1)]


async def test_async_glob_picks_up_new_namespaces_and_resumes_exactly(
    astore: redismem_aio.MemoryStore,
) -> None:
    await astore.put("ag:1", "k", 0)
    async with await astore.subscribe("ag:*") as subscription:
        await astore.put("ag:2", "k", 0)
        await astore.put("ag:1", "k", 1)
        first = await take(subscription, 2)
        token = subscription.resume_token
    await astore.put("ag:2", "k", 1)

    async with await astore.subscribe("ag:*", resume=token) as resumed:
        rest = await take(resumed, 1)

    assert sorted(values(first)) == [("ag:1", "k", 1), ("ag:2", "k", 0)]
    assert values(rest) == [("ag:2", "k", 1)]


async def test_async_resume_behind_compaction_yields_a_reset(
    aclient: Any,
) -> None:
    astore = redismem_aio.MemoryStore(aclient, compaction=MANUAL_ONLY)
    await astore.put("apacked", "a", 0)
    async with await astore.subscribe("apacked") as subscription:
        token = subscription.resume_token
    await astore.put("apacked", "b", 0)
    await astore.put("apacked", "b", 1)
    await astore.compact("apacked")

    async with await astore.subscribe("apacked", resume=token) as resumed:
        (reset,) = await take(resumed, 1)

    assert isinstance(reset, Reset)
    assert {r.key: r.value for r in reset.records} == {"a": 0, "b": 1}


async def test_async_new_epoch_yields_a_reset(
    astore: redismem_aio.MemoryStore, aclient: Any
) -> None:
    await astore.put("aepoch", "a", 1)
    async with await astore.subscribe("aepoch") as subscription:
        await aclient.delete(NamespaceKeys("aepoch").meta)
        await astore.put("aepoch", "a", 2)
        (reset,) = await take(subscription, 1)

    assert isinstance(reset, Reset) and "epoch" in reset.reason


async def test_async_replay_compact_and_stats_mirror_the_sync_store(
    aclient: Any,
) -> None:
    astore = redismem_aio.MemoryStore(aclient, compaction=MANUAL_ONLY)
    for i in range(3):
        await astore.put("amirror", "k", i)
    await astore.delete("amirror", "k")
    await astore.put("amirror", "j", 9)

    report = await astore.compact("amirror")
    replayed = await astore.replay("amirror")
    (stats,) = await astore.stats("amirror")
    page = await astore.changes("amirror", ops=["delete"], reverse=True)

    assert report.compacted_seq == 5
    assert [(r.key, r.value) for r in replayed.values()] == [("j", 9)]
    assert (stats.last_seq, stats.events) == (5, 2)
    assert page.items == []  # the delete is in the compacted prefix now
