"""A WebSocket spoken straight over ASGI: what /ws needs and nothing more.
(A handshake refused before the accept is answered by Quart, through the
app's error path: server/live/connection.py.)

Quart gives every WebSocket a request object (a Headers copy, a session,
cookies), a request context and three tasks of its own (a receiver, the
handler, and the call that waits for both). For a live socket that sits idle
for hours that was ~9 KiB of the ~29 KiB each one cost (#3 in
docs/benchmarks.md). This speaks the ASGI WebSocket messages directly in the
task the server already runs for the connection.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Disconnected(Exception):
    """The client went away (or the server closed the socket)."""


class ASGISocket:
    __slots__ = ("scope", "_receive", "_send", "accepted", "closed")

    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.accepted = False
        self.closed = False

    def forget_request_headers(self) -> None:
        """The handshake's headers (live/connection.py reads them as Quart's
        Websocket before the accept): an accepted socket never reads them again; a browser's are a few
        KiB that an idle socket would otherwise keep for hours."""
        self.scope["headers"] = []

    async def accept(self) -> None:
        self.accepted = True
        await self._send({"type": "websocket.accept"})

    async def receive(self) -> str | bytes:
        """The next message; Disconnected once the client is gone."""
        while not self.closed:
            event = await self._receive()
            if event["type"] == "websocket.receive":
                text = event.get("text")
                return text if text is not None else event.get("bytes") or b""
            if event["type"] == "websocket.disconnect":
                self.closed = True
        raise Disconnected()

    async def send(self, text: str) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
