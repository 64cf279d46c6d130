"""server/queues.py: the light one-consumer queue."""
from __future__ import annotations

import asyncio
import tracemalloc

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


async def idle_consumers_bytes(queue_class, count: int = 1000) -> float:
    """Bytes per consumer suspended in get() on an empty queue of its own,
    as every idle connection's ASGI-event queue is (Hypercorn's, server/patches/app_queue.py)."""
    queues = [queue_class(10) if issubclass(queue_class, BoundedLightQueue) else queue_class() for _ in range(count)]
    tracemalloc.start(1)
    try:
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.create_task(queue.get()) for queue in queues]
        await asyncio.sleep(0)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for queue in queues:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    return (after - before) / count


async def test_a_consumer_idle_on_a_bounded_queue_costs_what_it_does_on_a_light_one():
    """BoundedLightQueue wakes its producers from a `_taken` hook that
    LightQueue.get calls, not from a get() of its own: an override would
    keep one coroutine frame more suspended on every idle connection
    (0.2-0.3 KiB, #3 in docs/benchmarks.md)."""
    queue = BoundedLightQueue(10)
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert waiting.get_coro().cr_code is LightQueue.get.__code__  # the one frame it waits in
    assert not hasattr(waiting.get_coro().cr_await, "cr_code")  # ...on a future, not another coroutine
    queue.put_nowait("x")
    assert await waiting == "x"
    for queue_class in (LightQueue, BoundedLightQueue):  # first runs allocate the loop's one-off structures
        await idle_consumers_bytes(queue_class)
    light, bounded = await idle_consumers_bytes(LightQueue), await idle_consumers_bytes(BoundedLightQueue)
    # Measured: 849 bytes each; a get() override that calls LightQueue.get, 1,057.
    assert bounded <= light + 100, (light, bounded)
