"""The asyncio MemoryStore: same names, same behaviour, awaited."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from redismem import MemoryStore, RecordExists, VersionConflict
from redismem import aio as redismem_aio

pytestmark = pytest.mark.anyio


def test_the_asyncio_twin_has_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(redismem_aio.MemoryStore) == public(MemoryStore)
    for name in public(MemoryStore):
        method = getattr(redismem_aio.MemoryStore, name)
        assert inspect.iscoroutinefunction(method), name


async def test_put_get_update_and_delete(astore: redismem_aio.MemoryStore) -> None:
    created = await astore.create("users", "alice", {"n": 1})
    updated = await astore.update("users", "alice", {"n": 2}, expect_version=1)

    assert (created.version, updated.version) == (1, 2)
    assert await astore.get("users", "alice") == updated
    assert await astore.delete("users", "alice") is True
    assert await astore.get("users", "alice") is None


async def test_preconditions_raise_the_same_typed_errors(
    astore: redismem_aio.MemoryStore,
) -> None:
    await astore.put("users", "alice", 1)

    with pytest.raises(RecordExists):
        await astore.create("users", "alice", 2)
    with pytest.raises(VersionConflict) as refused:
        await astore.put("users", "alice", 2, expect_version=9)

    assert refused.value.actual == 1


async def test_list_changes_namespaces_and_put_many(
    astore: redismem_aio.MemoryStore,
) -> None:
    results = await astore.put_many(
        [("a:1", "x", 1), ("a:1", "y", 2), ("a:2", "z", 3), ("a:1", "x", 4, 7)]
    )

    assert isinstance(results[3], VersionConflict)
    assert [r.key for r in (await astore.list("a:1")).items] == ["x", "y"]
    assert [e.seq for e in (await astore.changes("a:1")).items] == [1, 2]
    assert await astore.namespaces("a:*") == ["a:1", "a:2"]


async def test_writes_of_both_twins_share_one_log(
    astore: redismem_aio.MemoryStore, client: Any
) -> None:
    MemoryStore(client).put("shared", "k", 1)
    await astore.put("shared", "k", 2)

    events = (await astore.changes("shared")).items
    assert [(e.op, e.version, e.seq) for e in events] == [
        ("create", 1, 1),
        ("update", 2, 2),
    ]


async def test_a_write_after_script_flush_reloads_the_script(
    astore: redismem_aio.MemoryStore, aclient: Any
) -> None:
    await astore.put("users", "alice", 1)
    await aclient.script_flush()

    assert (await astore.put("users", "alice", 2)).version == 2
    await aclient.script_flush()
    assert len(await astore.put_many([("users", "b", 1), ("users", "c", 1)])) == 2
