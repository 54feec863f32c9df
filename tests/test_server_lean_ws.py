"""The lean WebSocket protocol's queue and flag behave like asyncio's."""

from __future__ import annotations

import asyncio

import pytest

from redismem.server.lean_ws import Flag, ReceiveQueue

pytestmark = pytest.mark.anyio


async def test_the_receive_queue_hands_out_messages_in_order() -> None:
    queue = ReceiveQueue()
    queue.put_nowait({"n": 1})
    queue.put_nowait({"n": 2})

    first, second = await queue.get(), await queue.get()

    assert (first, second) == ({"n": 1}, {"n": 2})
    assert queue.empty()


async def test_a_waiting_reader_wakes_when_a_message_arrives() -> None:
    queue = ReceiveQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()

    queue.put_nowait({"type": "websocket.disconnect"})

    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.disconnect"}


async def test_a_cancelled_reader_leaves_the_queue_usable() -> None:
    queue = ReceiveQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader

    queue.put_nowait("later")

    assert await asyncio.wait_for(queue.get(), 1) == "later"


async def test_the_flag_wakes_every_waiter_once_set_and_blocks_once_cleared() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)

    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True] * 3

    flag.clear()
    blocked = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0.01)
    assert not blocked.done() and not flag.is_set()
    flag.set()
    assert await asyncio.wait_for(blocked, 1) is True


async def test_a_cancelled_flag_waiter_is_forgotten() -> None:
    flag = Flag()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    flag.set()

    assert flag.is_set()
    assert await flag.wait() is True


async def test_a_bounded_wait_says_whether_the_flag_went_up_in_time() -> None:
    flag = Flag()

    timed_out = await flag.wait_at_most(0.01)
    asyncio.get_running_loop().call_later(0.01, flag.set)
    raised = await flag.wait_at_most(5)

    assert (timed_out, raised) == (False, True)
    assert await flag.wait_at_most(0) is True  # already up: no waiting
