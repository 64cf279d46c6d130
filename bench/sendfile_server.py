"""The floor for downloads: a raw asyncio server that answers every GET with
one file, sent by loop.sendfile (the kernel's zero-copy sendfile(2)).

    python -m bench.sendfile_server --port 9001 --file /path/to/file
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys


async def serve(port: int, path: str) -> None:
    size = os.path.getsize(path)
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % size)
                await writer.drain()
                with open(path, "rb") as handle:
                    await loop.sendfile(writer.transport, handle, 0, size)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
