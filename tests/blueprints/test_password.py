"""Changing the password ends every other session and closes its sockets:
from the profile page (POST /account/password) and from the shell
(`cloudbuffer user passwd`, on a running multi-worker server)."""
from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest
from quart.testing.connections import WebsocketDisconnectError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import server.live.keepalive as keepalive
from server.models import sessions as sessions_model
from tests.live.test_connection import ORIGIN, open_device, receive
from tests.conftest import PASSWORD, make_token, register
from tests.helpers import BROWSER_ACCEPT
from tests.live_server import cloudbuffer_executable, live_server_factory  # noqa: F401  (fixture)

NEW_PASSWORD = "a new and better passphrase"


async def login(app, username: str = "alice", password: str = PASSWORD):
    client = app.test_client()
    response = await client.post("/account/login", json={"username": username, "password": password})
    return client, response


async def closed_code(ws) -> int:
    with pytest.raises(WebsocketDisconnectError) as closed:
        while True:
            await receive(ws, timeout=5)
    return closed.value.args[0]


async def test_changing_the_password_ends_other_sessions_and_closes_their_sockets(app, client):
    await register(client, "alice")  # the laptop
    phone, response = await login(app)
    assert response.status_code == 200
    token = await make_token(client)
    async with phone.websocket("/ws", headers=ORIGIN) as phone_ws, client.websocket("/ws", headers=ORIGIN) as own_ws:
        await open_device(phone_ws)
        await open_device(own_ws)
        response = await client.post("/account/password",
                                     json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert response.status_code == 200
        assert await response.get_json() == {"ok": True, "sessions_ended": 1}
        assert await closed_code(phone_ws) == 4401
        # The device that changed it stays logged in, socket and all.
        await client.post("/file/buffer", data=b"still here", headers={"X-Data-Type": "text"})
        while (message := await receive(own_ws))["type"] != "buffer":
            pass
        assert message["text"] == "still here"
    assert (await phone.get("/file/buffer")).status_code == 401
    assert (await client.get("/file/buffer")).status_code == 200
    # API tokens are separate credentials and keep working.
    assert (await app.test_client().get("/file/buffer", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await login(app, password=PASSWORD))[1].status_code == 401
    assert (await login(app, password=NEW_PASSWORD))[1].status_code == 200


async def test_from_an_api_token_every_session_ends(app, client):
    await register(client, "alice")
    token = await make_token(client)
    script = app.test_client()
    response = await script.post("/account/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                                 headers={"Authorization": f"Bearer {token}"})
    assert (await response.get_json()) == {"ok": True, "sessions_ended": 1}
    assert (await client.get("/file/buffer")).status_code == 401


async def test_the_current_password_is_required(app, client):
    await register(client, "alice")
    phone, _ = await login(app)
    response = await client.post("/account/password", json={"current_password": "not it", "new_password": NEW_PASSWORD})
    assert response.status_code == 403
    assert (await response.get_json())["error"] == "wrong_password"
    response = await client.post("/account/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert (await response.get_json())["error"] == "invalid_password"
    # Nothing changed: the other session lives, the old password works.
    assert (await phone.get("/file/buffer")).status_code == 204
    assert (await login(app))[1].status_code == 200


async def test_the_profile_page_form(app, client):
    await register(client, "alice")
    phone, _ = await login(app)
    page = await (await client.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})).get_data(as_text=True)
    assert 'action="/account/password"' in page and 'name="current_password"' in page
    assert 'href="/docs"' in page
    response = await client.post("/account/password", form={"current_password": "wrong", "new_password": NEW_PASSWORD},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 403 and "The current password is not right." in await response.get_data(as_text=True)
    response = await client.post("/account/password", form={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert "1 other device(s) logged out" in await response.get_data(as_text=True)
    assert (await phone.get("/file/buffer")).status_code == 401


async def test_a_session_ended_out_of_band_closes_its_socket_within_a_refresh(app, client, monkeypatch):
    """`cloudbuffer user passwd` on a server without Redis has no way to
    reach the server's sockets: each socket re-checks its session every
    PRESENCE_REFRESH seconds (20 s; 0.2 s here)."""
    monkeypatch.setattr(keepalive, "PRESENCE_REFRESH", 0.2)
    await register(client, "alice")
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        async with app.db.transaction() as conn:
            assert await sessions_model.delete_other_sessions(conn, 1, None)  # what the CLI does
        assert await closed_code(ws) == 4401


def test_cli_passwd_closes_sockets_through_redis(live_server_factory, redis_server, tmp_path):  # noqa: F811
    # The CLI is another process: it reaches the servers' sockets through
    # Redis, as every worker and host listens there.
    server = live_server_factory(tmp_path / "data", redis_url=redis_server.url)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/account/register", json={"username": "alice", "password": PASSWORD}).status_code == 201
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())

    async def scenario():
        sockets = [await connect(server.ws_url + "/ws", additional_headers={"Cookie": cookie},
                                 origin=server.base_url, open_timeout=5) for _ in range(2)]
        try:
            result = await asyncio.to_thread(
                subprocess.run, [cloudbuffer_executable(), "user", "passwd", "alice", "--password-stdin"],
                input=NEW_PASSWORD + "\n", capture_output=True, text=True, timeout=30, env=server.environment())
            assert result.returncode == 0, result.stderr
            assert "1 session(s) ended" in result.stdout
            for ws in sockets:
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 4401
        finally:
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/account/login", json={"username": "alice", "password": NEW_PASSWORD}).status_code == 200
