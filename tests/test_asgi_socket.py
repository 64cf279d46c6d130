"""ASGISocket against recorded ASGI messages: the unit speaks the ASGI
WebSocket messages and nothing else, so a list on each side is its whole
world. The socket over a real server is tested in tests/live/test_connection.py
and tests/test_live_e2e.py."""
from __future__ import annotations

import pytest

from server.asgi_socket import ASGISocket, Disconnected


def make_socket(events: list[dict], extensions: dict | None = None,
                headers: list[tuple[bytes, bytes]] | None = None) -> tuple[ASGISocket, list[dict]]:
    sent: list[dict] = []
    pending = list(events)

    async def receive() -> dict:
        return pending.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": headers or [], "extensions": extensions}
    return ASGISocket(scope, receive, send), sent


def test_forgetting_the_request_headers_empties_them():
    socket, _ = make_socket([], headers=[(b"Origin", b"http://a"), (b"Cookie", b"one=1")])
    socket.forget_request_headers()
    assert socket.scope["headers"] == []


async def test_receive_returns_text_or_bytes_then_disconnected_for_good():
    socket, _ = make_socket([{"type": "websocket.receive", "text": "hi"},
                             {"type": "websocket.receive", "bytes": b"\x00"},
                             {"type": "websocket.disconnect", "code": 1000}])
    assert await socket.receive() == "hi"
    assert await socket.receive() == b"\x00"
    with pytest.raises(Disconnected):
        await socket.receive()
    assert socket.closed
    with pytest.raises(Disconnected):  # nothing more is read from a closed socket
        await socket.receive()


async def test_accept_send_close_and_nothing_after_close():
    socket, sent = make_socket([])
    await socket.accept()
    await socket.send("one")
    await socket.close(4401, "logged out")
    await socket.send("too late")
    await socket.close(1000)
    assert sent == [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "one"},
                    {"type": "websocket.close", "code": 4401, "reason": "logged out"}]
