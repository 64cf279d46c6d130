"""Queues for one consumer that cost nothing while they are empty.

Every idle live socket holds two queues (its broker subscription and
Hypercorn's queue of ASGI events for the app).
An asyncio.Queue allocates four deques up front (~3 KiB even when empty);
these keep a deque only while items (or blocked producers) wait
(docs/benchmarks.md, #3)."""
from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any


class LightQueue:
    """Unbounded FIFO with asyncio.Queue's `put` and `get` for one consumer."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        self._taken()
        return item

    def _taken(self) -> None:
        """Called after get() took an item (a hook rather than an override of
        get: a coroutine frame less on every idle connection, #3)."""


class BoundedLightQueue(LightQueue):
    """A LightQueue whose `put` waits while `maxsize` items are queued, as
    asyncio.Queue(maxsize) does: the producer slows to the consumer's pace."""

    __slots__ = ("_maxsize", "_putters", "_closed")

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self._maxsize = maxsize
        self._putters: deque[asyncio.Future[None]] | None = None
        self._closed = False

    def full(self) -> bool:
        return 0 < self._maxsize <= (len(self._items) if self._items is not None else 0)

    def close(self) -> None:
        """The consumer is gone: drop what waits, and from now on every put
        returns at once and drops its item, instead of waiting for a get
        that will never come."""
        self._closed = True
        self._items = None
        putters, self._putters = self._putters, None
        for putter in putters or ():
            if not putter.done():
                putter.set_result(None)

    def put_nowait(self, item: Any) -> None:
        if self._closed:
            return
        if self.full():
            raise asyncio.QueueFull
        super().put_nowait(item)

    async def put(self, item: Any) -> None:
        while self.full() and not self._closed:
            putter = asyncio.get_running_loop().create_future()
            if self._putters is None:
                self._putters = deque()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                putter.cancel()
                if self._putters is not None:
                    with contextlib.suppress(ValueError):
                        self._putters.remove(putter)
                    if not self._putters:
                        self._putters = None
                # Woken but cancelled before it could put: pass the turn on.
                if not self.full() and not putter.cancelled():
                    self._wake_a_putter()
                raise
        self.put_nowait(item)

    def _taken(self) -> None:
        self._wake_a_putter()

    def _wake_a_putter(self) -> None:
        putters = self._putters
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)
                break
        if not putters:
            self._putters = None
