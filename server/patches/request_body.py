"""Upload bodies kept as a list of pieces, and read from the socket only as fast as they are consumed.

Changes: Quart's request Body appends every received piece to one bytearray
and its receiver (`ASGIHTTPConnection.handle_messages`) never waits, so a
client faster than the disk piles the upload up in memory, and each read
copies the pile. StreamingBody is a Body subclass that uses Body's private
state (`_complete`, `_has_data`, `_must_raise`, `_max_content_length`) and
keeps the pieces in a list, handing them over joined;
BackpressureHTTPConnection is `handle_messages` edited to stop reading from
the socket while HIGH_WATER bytes wait, so TCP slows the client down. They
are installed through Quart's public hooks (`app.request_class`,
`app.asgi_http_class`).

Buys: #4, raw upload throughput and peak RSS growth (docs/benchmarks.md,
"Patches, with and without").

Checked against: quart 0.22.0 (the edited `handle_messages` and the Body
methods StreamingBody replaces are compared with the installed ones by their
source's digest).
"""
from __future__ import annotations

import asyncio
from collections import deque

from quart.asgi import ASGIHTTPConnection
from quart.wrappers.request import Body, Request
from werkzeug.exceptions import RequestEntityTooLarge

from .base import Patch, changed_source

NAME = "request_body"
HIGH_WATER = 2 * 1024 * 1024  # bytes a request may have received but not yet consumed
# Quart 0.22.0's code that StreamingBody and BackpressureHTTPConnection replace.
_COPIED = {"ASGIHTTPConnection.handle_messages": "c69dd49dbf636109", "Body.__anext__": "5ac2089e0e40431b",
           "Body.__await__": "7430eb548c1857cc", "Body.append": "bb46c66a53b8b016", "Body.__init__": "20625c2145704a08"}


class StreamingBody(Body):
    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self._room = asyncio.Event()
        self._room.set()
        self._whole = False  # awaited whole: nothing consumes it piecemeal, so never hold back

    @property
    def complete(self) -> bool:
        """Whether the last piece of the body has arrived."""
        return self._complete.is_set()

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


class StreamingRequest(Request):
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


def problem() -> str | None:
    return changed_source(_COPIED, {"ASGIHTTPConnection.handle_messages": ASGIHTTPConnection.handle_messages,
                                    "Body.__anext__": Body.__anext__, "Body.__await__": Body.__await__,
                                    "Body.append": Body.append, "Body.__init__": Body.__init__})


def apply(app) -> None:
    app.request_class = StreamingRequest
    app.asgi_http_class = BackpressureHTTPConnection


PATCH = Patch(NAME, {"quart": "0.22.0"}, problem, apply)
