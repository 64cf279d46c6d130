"""The worker's keep-alive of its live sockets (server/live/keepalive.py)."""
from __future__ import annotations

import asyncio
import json

import pytest
from quart.testing.connections import WebsocketDisconnectError

from server.services import services
from server.live import keepalive
from tests.conftest import register
from tests.live.test_connection import ORIGIN, live_app, open_device, receive, receive_until  # noqa: F401 (fixture)


async def test_a_heartbeat_client_that_goes_silent_is_closed(app, alice, monkeypatch):
    monkeypatch.setattr(keepalive, "PRESENCE_REFRESH", 0.05)
    monkeypatch.setattr(keepalive, "HEARTBEAT_TIMEOUT", 0.3)
    async with alice.websocket("/ws", headers=ORIGIN) as quiet, \
            alice.websocket("/ws", headers=ORIGIN) as chatty, \
            alice.websocket("/ws", headers=ORIGIN) as no_heartbeats:
        for ws in (quiet, chatty, no_heartbeats):
            await open_device(ws)
        for ws in (quiet, chatty):  # these two say they send heartbeats
            await ws.send(json.dumps({"type": "ping"}))
            await receive_until(ws, "pong")
        for _ in range(8):  # 0.8 s: the chatty one keeps its heartbeat going
            await asyncio.sleep(0.1)
            await chatty.send(json.dumps({"type": "ping"}))
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                await receive(quiet)
        assert closed.value.args[0] == 1008
        # A socket that never sent a heartbeat is not expected to, and the
        # chatty one kept its promise: both stay open.
        await chatty.send(json.dumps({"type": "ping", "t": 1}))
        while (await receive_until(chatty, "pong"))["t"] != 1:
            pass
        await no_heartbeats.send(json.dumps({"type": "ping", "t": 2}))
        assert (await receive_until(no_heartbeats, "pong"))["t"] == 2


async def test_one_keep_alive_task_refreshes_every_socket_of_the_worker(live_app, monkeypatch):
    monkeypatch.setattr(keepalive, "PRESENCE_REFRESH", 0.05)
    refreshed: list[str] = []
    real_refresh = services(live_app).presence.refresh

    async def refresh(user_id, conn_id, device):
        refreshed.append(conn_id)
        await real_refresh(user_id, conn_id, device)

    monkeypatch.setattr(services(live_app).presence, "refresh", refresh)
    keep_alive = live_app.asgi_app.keep_alive  # the one create_app built
    clients = []
    for name in ("alice", "bob"):
        clients.append(live_app.test_client())
        await register(clients[-1], name)
    async with clients[0].websocket("/ws", headers=ORIGIN) as a1, \
            clients[0].websocket("/ws", headers=ORIGIN) as a2, \
            clients[1].websocket("/ws", headers=ORIGIN) as b1:
        for ws in (a1, a2, b1):
            await open_device(ws)
        for _ in range(100):  # each socket joins once its `_presence` publish is out
            if len(keep_alive.connections) == 3:
                break
            await asyncio.sleep(0.02)
        assert len(keep_alive.connections) == 3
        task = keep_alive.connections.task
        # Three rounds at least; waited for, not slept for: a loaded CI
        # machine may take far longer than 3 periods to run them.
        for _ in range(500):
            if len(refreshed) >= 3 * 3:
                break
            await asyncio.sleep(0.02)
        assert keep_alive.connections.task is task  # one task for all of them
        conn_ids = {conn.conn_id for conn in keep_alive.connections}
        assert set(refreshed) == conn_ids and len(refreshed) >= 3 * 3
        alice_id = next(c.principal.user_id for c in keep_alive.connections if c.principal.username == "alice")
        assert await services(live_app).presence.connections(alice_id) == 2  # refreshed, still present
    await asyncio.sleep(0.05)
    assert len(keep_alive.connections) == 0 and keep_alive.connections.task is None
    assert task.done()
