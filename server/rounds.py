"""Periodic work over many members (open sockets), spread over the period.

A worker pings each of its sockets and refreshes each one's presence entry
every 20 s. One task per socket for that costs memory (~1.3 KiB per idle
socket); one task doing every socket at once stalls the event loop for tens
of milliseconds each time with thousands of sockets, which showed as push
latency spikes (#1) and cut the fan-out capacity (#2 in docs/benchmarks.md).
Rounds keeps one task and visits each member once per period, a slice at a
time: with SLICES slices, every period / SLICES seconds.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

SLICE_BITS = 5
SLICES = 1 << SLICE_BITS


def _slice_of(member: Any) -> int:
    # Fibonacci hashing of the object's address: addresses of objects of one
    # size are evenly spaced, which a plain modulo would bunch up.
    return (((id(member) >> 4) * 0x9E3779B1) & 0xFFFFFFFF) >> (32 - SLICE_BITS)


class Rounds:
    """Calls `visit(members)` for every slice of the members in turn, so each
    member is visited once every `period` seconds. The task runs only while
    there are members; `visit` must not raise for one member's sake (an
    exception is logged and the rounds go on)."""

    def __init__(self, period: float | Callable[[], float], visit: Callable[[list], Awaitable[None]],
                 name: str) -> None:
        self._period = period
        self._visit = visit
        self._name = name
        self._slices: list[set] = [set() for _ in range(SLICES)]
        self._count = 0
        self.task: asyncio.Task | None = None

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        for members in self._slices:
            yield from members

    def add(self, member: Any) -> None:
        members = self._slices[_slice_of(member)]
        if member not in members:
            members.add(member)
            self._count += 1
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run(), name=self._name)

    def discard(self, member: Any) -> None:
        members = self._slices[_slice_of(member)]
        if member in members:
            members.discard(member)
            self._count -= 1
        if not self._count and self.task is not None:
            if self.task is not asyncio.current_task():
                self.task.cancel()  # nothing left for a shutdown to wait out
            self.task = None

    def period(self) -> float:
        return self._period() if callable(self._period) else self._period

    async def _run(self) -> None:
        index = 0
        while self._count:
            await asyncio.sleep(self.period() / SLICES)
            members = list(self._slices[index])
            index = (index + 1) % SLICES
            if not members:
                continue
            try:
                await self._visit(members)
            except Exception:  # noqa: BLE001 - the next slice tries again
                log.exception("%s failed", self._name)
