"""Load on the live sockets: an idle pool in holder processes, and probes that
measure push latency at a fixed rate.

A probe is one user with two devices, A (sender) and B (receiver), on
different server workers (told apart by the `node` in hello), so every change
crosses Redis. The driver sends `set` from A on a fixed schedule -- change i is
due at t0 + i/rate, whatever the answers do -- and B's arrival time minus the
scheduled time goes into a histogram. Changes still missing a few seconds after
the last one count as lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
from dataclasses import dataclass
from typing import Callable

from websockets.asyncio.client import ClientConnection, connect

from bench.hist import Histogram
from bench.stacks import ROOT, Target
from bench.system import Pinning

MARK = "bench "  # probe texts start with this; the rest is the change's key
PER_HOLDER = 9000  # sockets per holder process (its descriptor limit is 20,000 here)
LOST_AFTER = 5.0  # seconds after the last change before the missing ones count as lost


class Pool:
    """Idle sockets, spread over holder processes pinned to the load cores."""

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self.holders: list[tuple[asyncio.subprocess.Process, int]] = []
        self.size = 0

    async def _holder(self) -> int:
        if not self.holders or self.holders[-1][1] >= PER_HOLDER:
            process = await asyncio.create_subprocess_exec(
                *self.pinning.load_command([sys.executable, "-m", "bench.holder"]), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
            self.holders.append((process, 0))
        return len(self.holders) - 1

    async def _ask(self, index: int, command: dict, timeout: float = 300) -> dict:
        process = self.holders[index][0]
        process.stdin.write((json.dumps(command) + "\n").encode())
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("a holder process died")
        return json.loads(line)

    async def add(self, targets: list[Target], compression: str | None = None, concurrency: int = 64) -> dict:
        """Open sockets until all targets are tried; returns totals."""
        total = {"connected": 0, "failed": 0, "errors": [], "seconds": 0.0}
        while targets:
            index = await self._holder()
            room = PER_HOLDER - self.holders[index][1]
            batch, targets = targets[:room], targets[room:]
            reply = await self._ask(index, {"cmd": "connect", "targets": batch, "compression": compression,
                                            "concurrency": concurrency})
            process, held = self.holders[index]
            self.holders[index] = (process, held + reply["connected"])
            self.size += reply["connected"]
            for key in ("connected", "failed", "seconds"):
                total[key] += reply[key]
            total["errors"] += reply["errors"]
        return total

    async def close(self) -> None:
        """Close every socket (the holders stay for reuse)."""
        await asyncio.gather(*(self._ask(i, {"cmd": "close"}) for i in range(len(self.holders))))
        self.holders = [(process, 0) for process, _ in self.holders]
        self.size = 0

    async def shutdown(self) -> None:
        for process, _ in self.holders:
            with contextlib.suppress(Exception):
                process.stdin.write(b'{"cmd": "exit"}\n')
                await process.stdin.drain()
        for process, _ in self.holders:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.holders = []
        self.size = 0


async def open_socket(target: Target, compression: str | None = None) -> tuple[ClientConnection, str]:
    url, headers = target
    ws = await connect(url, additional_headers=headers, compression=compression, proxy=None, open_timeout=20,
                       ping_interval=None, close_timeout=1, max_queue=None, local_addr=("127.0.0.30", 0))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 20))
    if hello.get("type") != "hello":
        await ws.close()
        raise RuntimeError(f"expected hello, got {hello.get('type')!r}")
    return ws, hello.get("node", "")


async def drain(ws: ClientConnection, on_message: Callable[[str], None] | None = None) -> None:
    """Read a socket's messages as a client would (unread, they pile up in
    the client) until it closes or the task is cancelled."""
    with contextlib.suppress(Exception):
        async for raw in ws:
            if on_message is not None:
                on_message(raw)


@dataclass
class Probe:
    a: ClientConnection
    b: ClientConnection


async def open_elsewhere(target: Target, other_node: str, attempts: int = 60) -> ClientConnection:
    """Open a socket on another worker than `other_node` (the kernel picks the
    worker: reconnect until it is another one)."""
    for _ in range(attempts):
        ws, node = await open_socket(target)
        if node != other_node:
            return ws
        await ws.close()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"could not get a socket on another worker than {other_node}")


async def open_probes(pairs: list[tuple[Target, Target]], elsewhere: bool = True) -> list[Probe]:
    """Open A and B of each probe user, B on another worker than A (unless
    the server has one process, as the Node peer)."""
    probes = []
    for target_a, target_b in pairs:
        a, node_a = await open_socket(target_a)
        b = await open_elsewhere(target_b, node_a) if elsewhere else (await open_socket(target_b))[0]
        probes.append(Probe(a, b))
    return probes


class Driver:
    """Fixed-rate changes through the probes; latencies into histograms."""

    def __init__(self, probes: list[Probe]) -> None:
        self.probes = probes
        self.pending: dict[str, tuple[float, Histogram]] = {}
        self.loop = asyncio.get_running_loop()
        self.readers = [asyncio.create_task(self._receive(p.b)) for p in probes]
        self.readers += [asyncio.create_task(drain(p.a)) for p in probes]
        self.run_id = secrets.token_hex(3)
        self.sent = 0
        self.closed_senders: set[int] = set()

    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                if MARK not in raw:
                    continue
                message = json.loads(raw)
                text = message.get("text") if message.get("type") == "buffer" else None
                if text and text.startswith(MARK):
                    entry = self.pending.pop(text[len(MARK):], None)
                    if entry is not None:
                        entry[1].record(self.loop.time() - entry[0])

    async def run(self, rate: float, hist: Histogram, duration: float, until: asyncio.Future | None = None,
                  max_duration: float = 600) -> Histogram:
        """Send changes at `rate` per second for `duration` seconds, or, with
        `until`, until it is done (at most max_duration); then collect."""
        start = self.loop.time() + 0.02
        limit = start + (max_duration if until is not None else duration)
        index = 0
        mine: list[str] = []
        while True:
            due = start + index / rate
            if due >= limit or (until is not None and until.done()):
                break
            delay = due - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            probe = self.probes[(self.sent + index) % len(self.probes)]
            key = f"{self.run_id}:{self.sent + index}"
            self.pending[key] = (due, hist)
            mine.append(key)
            try:
                await probe.a.send(json.dumps({"type": "set", "text": MARK + key, "id": index}))
            except Exception:  # noqa: BLE001 - a closed sender: the change counts as lost
                self.closed_senders.add(id(probe.a))
            index += 1
        self.sent += index
        deadline = self.loop.time() + LOST_AFTER
        while self.loop.time() < deadline and any(key in self.pending for key in mine):
            await asyncio.sleep(0.02)
        lost = [key for key in mine if key in self.pending]
        for key in lost:
            del self.pending[key]
        hist.record_lost(len(lost))
        return hist

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for p in self.probes for ws in (p.a, p.b)), return_exceptions=True)
