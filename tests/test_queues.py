"""server/queues.py: the light one-consumer queue."""
from __future__ import annotations

import asyncio

import pytest

from server.queues import BoundedLightQueue, LightQueue


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


# --- BoundedLightQueue -------------------------------------------------------


async def test_a_full_queue_makes_put_wait_until_the_consumer_takes_one():
    queue = BoundedLightQueue(2)
    await queue.put(1)
    await queue.put(2)
    assert queue.full()
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(3)
    putter = asyncio.create_task(queue.put(3))
    await asyncio.sleep(0)
    assert not putter.done()
    assert await queue.get() == 1
    await asyncio.wait_for(putter, 1)
    assert [await queue.get(), await queue.get()] == [2, 3]
    assert queue._items is None and queue._putters is None


async def test_blocked_producers_go_in_the_order_they_came():
    queue = BoundedLightQueue(1)
    await queue.put("first")
    putters = [asyncio.create_task(queue.put(n)) for n in range(3)]
    await asyncio.sleep(0)
    received = [await queue.get() for _ in range(4)]
    await asyncio.gather(*putters)
    assert received == ["first", 0, 1, 2]


async def test_a_cancelled_put_passes_its_turn_to_the_next_producer():
    queue = BoundedLightQueue(1)
    await queue.put("first")
    doomed = asyncio.create_task(queue.put("never"))
    waiting = asyncio.create_task(queue.put("second"))
    await asyncio.sleep(0)
    assert await queue.get() == "first"  # wakes `doomed` ...
    doomed.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(doomed, return_exceptions=True)
    await asyncio.wait_for(waiting, 1)
    assert await asyncio.wait_for(queue.get(), 1) == "second"
    assert queue._items is None and queue._putters is None


async def test_an_unbounded_light_queue_has_no_bound():
    queue = BoundedLightQueue(0)
    for n in range(100):
        await asyncio.wait_for(queue.put(n), 1)
    assert not queue.full()


async def test_closing_a_bounded_queue_releases_its_waiting_producer_and_drops_from_then_on():
    queue = BoundedLightQueue(1)
    await queue.put("a")
    blocked = asyncio.create_task(queue.put("b"))
    await asyncio.sleep(0)
    assert not blocked.done()
    queue.close()  # the consumer is gone
    await asyncio.wait_for(blocked, 1)
    await asyncio.wait_for(queue.put("c"), 1)
    queue.put_nowait("d")
    assert not queue.full() and queue._items is None
