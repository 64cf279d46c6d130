"""A process that holds idle WebSockets for the benchmarks (the "idle pool").

One process may hold only as many sockets as its open-file limit allows, so
the pool is spread over several of these, each driven over stdin/stdout with
one JSON object per line:

    {"cmd": "connect", "targets": [[url, {header: value}], ...], "compression": null}
        -> {"connected": n, "failed": n, "errors": [...], "seconds": s}
    {"cmd": "close"}  -> {"closed": n}
    {"cmd": "exit"}   -> (exits)

A socket counts as connected once the server's first message (hello) arrived.
Idle sockets never read again: with max_queue=None the library keeps reading
(and answering the server's pings) while the few messages queue up.
Source addresses rotate over 127.0.0.2-127.0.0.17 so the pool never runs out
of ephemeral ports, however many sockets it holds.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

SOURCE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 18)]


class Holder:
    def __init__(self) -> None:
        self.sockets: list = []
        self.counter = 0

    async def connect(self, targets: list, compression: str | None, concurrency: int, timeout: float) -> dict:
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []

        async def one(url: str, headers: dict) -> bool:
            async with gate:
                self.counter += 1
                source = SOURCE_ADDRESSES[self.counter % len(SOURCE_ADDRESSES)]
                try:
                    ws = await connect(url, additional_headers=headers, compression=compression, proxy=None,
                                       open_timeout=timeout, ping_interval=None, close_timeout=1,
                                       max_queue=None, local_addr=(source, 0))
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    errors.append(f"connect: {type(error).__name__}: {error}")
                    return False
                try:
                    first = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                    if first.get("type") != "hello":
                        raise ValueError(f"first message is {first.get('type')!r}")
                except Exception as error:  # noqa: BLE001
                    errors.append(f"hello: {type(error).__name__}: {error}")
                    await ws.close()
                    return False
                self.sockets.append(ws)
                return True

        results = await asyncio.gather(*(one(url, headers) for url, headers in targets))
        return {"connected": sum(results), "failed": len(results) - sum(results), "errors": errors[:5],
                "seconds": round(time.monotonic() - started, 3), "held": len(self.sockets)}

    async def close(self) -> dict:
        sockets, self.sockets = self.sockets, []
        gate = asyncio.Semaphore(256)

        async def one(ws) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(ws.close(), 2)
                except Exception:  # noqa: BLE001 - a socket the server already dropped
                    pass

        await asyncio.gather(*(one(ws) for ws in sockets))
        return {"closed": len(sockets)}


async def main() -> None:
    from bench.system import raise_nofile_limit

    raise_nofile_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    holder = Holder()
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "connect":
            reply = await holder.connect(command["targets"], command.get("compression"),
                                         command.get("concurrency", 64), command.get("timeout", 30.0))
        elif command["cmd"] == "close":
            reply = await holder.close()
        else:
            await holder.close()
            break
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
