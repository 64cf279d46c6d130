"""A queue for one consumer that costs nothing while it is empty.

Every idle live socket holds two queues (its broker subscription and Quart's
inbox of client messages). An asyncio.Queue allocates four deques and its
events up front (~2.5 KiB even when empty); this one keeps a deque only while
items wait (docs/benchmarks.md, #3)."""
from __future__ import annotations

import asyncio
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
        return item
