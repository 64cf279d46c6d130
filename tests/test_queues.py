"""server/queues.py: the light one-consumer queue."""
from __future__ import annotations

import asyncio

from server.queues import LightQueue


async def test_items_come_out_in_order_and_an_empty_queue_holds_no_deque():
    queue = LightQueue()
    assert queue._items is None
    await queue.put("a")
    queue.put_nowait("b")
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert queue._items is None


async def test_get_waits_for_a_put():
    queue = LightQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait("late")
    assert await asyncio.wait_for(getter, 1) == "late"


async def test_a_cancelled_get_leaves_the_queue_usable():
    queue = LightQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    queue.put_nowait("next")
    assert await asyncio.wait_for(queue.get(), 1) == "next"
