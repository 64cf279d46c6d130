"""What an idle live socket costs the app, in bytes of Python objects.

Benchmark #3 (docs/benchmarks.md) measures the whole server's RSS per idle
socket and is run by hand; several shapes of server/live/connection.py and
server/broker.py exist only to keep that figure down (the pump in the
handshake's frame, `_Subscribed` rather than an @asynccontextmanager, the
reader waking the pump in a `finally` rather than through a done-callback,
`__slots__` on the per-socket records). This holds them in the suite: the
app (app.asgi_app, the live middleware) is driven with many fake ASGI
WebSockets in this process, and tracemalloc counts what the app allocated
for them, allocations of this file (the fake sockets, their tasks) left out.
"""
from __future__ import annotations

import asyncio
import gc
import tracemalloc

from server import create_app
from tests.conftest import make_token, register

USERS = 100
DEVICES = 6  # sockets per user: 600 in all
# Measured 4,830-4,940 bytes per socket (Python 3.11, five runs), and
# 5,200-5,330 with Broker.subscribe as an @asynccontextmanager: the margin
# lets this measurement's spread through, not that shape. The frames each
# idle socket keeps suspended (0.2-0.3 KiB each) are held exactly, below.
BYTES_PER_IDLE_SOCKET = 5_120


def suspended_chain(task: asyncio.Task) -> list[str]:
    """The coroutines an idle socket's task is suspended in, outermost first."""
    chain, awaited = [], task.get_coro()
    while hasattr(awaited, "cr_code"):
        chain.append(awaited.cr_code.co_qualname)
        awaited = awaited.cr_await
    return chain


class FakeWebSocket:
    """One client as the ASGI server shows it to the app: a handshake with a
    bearer token, then silence until the test hangs up."""

    def __init__(self, app, token: str) -> None:
        self.scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws",
            "path": "/ws", "raw_path": b"/ws", "root_path": "", "query_string": b"",
            "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 40000), "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        self.connected = False
        self.hung_up = asyncio.get_running_loop().create_future()
        self.sent = 0
        self.closed_with = None
        self.task = asyncio.create_task(app.asgi_app(self.scope, self.receive, self.send))

    async def receive(self) -> dict:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        await self.hung_up
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: dict) -> None:
        if message["type"] == "websocket.send":
            self.sent += 1
        elif message["type"] != "websocket.accept":
            self.closed_with = message

    def hang_up(self) -> None:
        if not self.hung_up.done():
            self.hung_up.set_result(None)


async def open_idle(app, tokens: list[str]) -> list[FakeWebSocket]:
    keep_alive = app.asgi_app.keep_alive
    expected = len(keep_alive.connections) + len(tokens) * DEVICES
    sockets = [FakeWebSocket(app, token) for token in tokens for _ in range(DEVICES)]
    for _ in range(500):
        await asyncio.sleep(0.02)
        # hello, the snapshot and a `devices` list: each socket is then idle
        if len(keep_alive.connections) >= expected and all(s.sent >= 3 for s in sockets):
            break
    assert all(s.closed_with is None for s in sockets), [s.closed_with for s in sockets if s.closed_with][:3]
    assert len(keep_alive.connections) == expected
    await asyncio.sleep(0.2)  # the last `_presence` events delivered
    return sockets


async def hang_up(sockets: list[FakeWebSocket]) -> None:
    for socket in sockets:
        socket.hang_up()
    await asyncio.gather(*(s.task for s in sockets))


def app_bytes(snapshot: tracemalloc.Snapshot) -> int:
    return sum(trace.size for trace in snapshot.filter_traces([tracemalloc.Filter(False, __file__)]).traces)


async def test_an_idle_socket_costs_the_app_few_bytes(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "RATE_LIMITS": False})  # 101 sign-ups
    async with app.test_app():
        tokens = []
        for number in range(USERS + 1):
            client = app.test_client()
            await register(client, f"user{number}")
            tokens.append(await make_token(client))
        # One user's sockets first, so the worker's one-off structures
        # (the keep-alive's task, caches, the shutdown watch) are in place.
        warm = await open_idle(app, tokens[:1])
        gc.collect()
        tracemalloc.start(1)
        try:
            before = app_bytes(tracemalloc.take_snapshot())
            sockets = await open_idle(app, tokens[1:])
            gc.collect()
            after = app_bytes(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        # Serving and the pump run in the handshake's frame, which waits on
        # the subscription's queue itself (no `async for`, no pump function).
        assert suspended_chain(sockets[0].task) == ["LiveSocketsFirst.__call__", "_handshake_and_serve",
                                                    "LightQueue.get"]
        await hang_up(sockets + warm)
    per_socket = (after - before) / len(sockets)
    assert 0 < per_socket <= BYTES_PER_IDLE_SOCKET, f"{per_socket:.0f} bytes per idle socket"

