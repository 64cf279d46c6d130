"""Request and response classes that move large bodies cheaply.

Uploads: Quart's request Body appends every received piece to one bytearray
and its receiver never waits, so a client faster than the disk piles the
upload up in memory (and each read copies the pile). StreamingBody keeps the
pieces in a list, hands them over joined, and BackpressureHTTPConnection stops
reading from the socket while HIGH_WATER bytes wait -- TCP then slows the
client down. Measured in docs/benchmarks.md (#4).

Downloads: Quart's FileBody reads 8 KiB at a time and asks the file for its position on
every chunk (two thread hops each); a 1 GiB download would make ~260,000 of
them. This one reads 4 MiB per hop and tracks the position itself (1 MiB
chunks reached 0.54x of sendfile, 4 MiB 0.71x; #5 in docs/benchmarks.md).
"""
from __future__ import annotations

import asyncio
from collections import deque

from quart.asgi import ASGIHTTPConnection
from quart.wrappers.request import Body, Request
from quart.wrappers.response import FileBody, Response
from werkzeug.exceptions import RequestEntityTooLarge



class LargeChunkFileBody(FileBody):
    buffer_size = 4 * 1024 * 1024

    async def __aenter__(self) -> "LargeChunkFileBody":
        await super().__aenter__()
        self._position = self.begin
        return self

    async def __anext__(self) -> bytes:
        remaining = self.end - self._position
        if remaining <= 0:
            raise StopAsyncIteration()
        chunk = await self.file.read(min(self.buffer_size, remaining))
        if not chunk:
            raise StopAsyncIteration()
        self._position += len(chunk)
        return chunk


class CloudBufferResponse(Response):
    file_body_class = LargeChunkFileBody


HIGH_WATER = 2 * 1024 * 1024  # bytes a request may have received but not yet consumed


class StreamingBody(Body):
    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self._room = asyncio.Event()
        self._room.set()
        self._whole = False  # awaited whole: nothing consumes it piecemeal, so never hold back

    def append(self, data: bytes) -> None:
        if data == b"" or self._must_raise is not None:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._received += len(data)
        if self._buffered >= HIGH_WATER and not self._whole:
            self._room.clear()
        self._has_data.set()
        if self._max_content_length is not None and self._received > self._max_content_length:
            self._must_raise = RequestEntityTooLarge()
            self.set_complete()

    def _take(self) -> bytes:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._room.set()
        return data

    async def __anext__(self) -> bytes:
        if self._must_raise is not None:
            raise self._must_raise
        if not self._complete.is_set():
            await self._has_data.wait()
        if self._must_raise is not None:
            raise self._must_raise
        if self._complete.is_set() and not self._chunks:
            raise StopAsyncIteration()
        self._has_data.clear()
        return self._take()

    def __await__(self):
        if self._must_raise is not None:
            raise self._must_raise
        self._whole = True
        self._room.set()
        yield from self._complete.wait().__await__()
        if self._must_raise is not None:
            raise self._must_raise
        return self._take()

    def clear(self) -> None:
        self._chunks.clear()
        self._buffered = 0
        self._room.set()

    async def wait_for_room(self) -> None:
        while not self._room.is_set() and not self._complete.is_set():
            await self._room.wait()


class CloudBufferRequest(Request):
    body_class = StreamingBody


class BackpressureHTTPConnection(ASGIHTTPConnection):
    async def handle_messages(self, request, receive) -> None:
        body = request.body
        while True:
            if isinstance(body, StreamingBody):
                await body.wait_for_room()
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
            elif message["type"] == "http.disconnect":
                return
