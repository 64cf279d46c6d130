"""Changing the password ends every other session and every API token
(unless the person keeps the tokens) and closes their sockets: from the
profile page (POST /account/password) and from the shell (`cloudbuffer user
passwd`, on a running multi-worker server)."""
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


async def test_changing_the_password_ends_other_sessions_and_tokens_and_closes_their_sockets(app, client):
    await register(client, "alice")  # the laptop
    phone, response = await login(app)
    assert response.status_code == 200
    token = await make_token(client)
    script = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    async with phone.websocket("/ws", headers=ORIGIN) as phone_ws, client.websocket("/ws", headers=ORIGIN) as own_ws, \
            script.websocket("/ws", headers=bearer) as script_ws:
        for ws in (phone_ws, own_ws, script_ws):
            await open_device(ws)
        response = await client.post("/account/password",
                                     json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert response.status_code == 200
        assert await response.get_json() == {"ok": True, "sessions_ended": 1, "tokens_ended": 1}
        assert await closed_code(phone_ws) == 4401
        assert await closed_code(script_ws) == 4401
        # The device that changed it stays logged in, socket and all.
        await client.post("/file/buffer", data=b"still here", headers={"X-Data-Type": "text"})
        while (message := await receive(own_ws))["type"] != "buffer":
            pass
        assert message["text"] == "still here"
    assert (await phone.get("/file/buffer")).status_code == 401
    assert (await script.get("/file/buffer", headers=bearer)).status_code == 401
    assert (await client.get("/file/buffer")).status_code == 200
    assert (await login(app, password=PASSWORD))[1].status_code == 401
    assert (await login(app, password=NEW_PASSWORD))[1].status_code == 200


async def test_tokens_are_kept_when_asked(app, client):
    await register(client, "alice")
    token = await make_token(client)
    script = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    async with script.websocket("/ws", headers=bearer) as script_ws:
        await open_device(script_ws)
        response = await client.post("/account/password", json={"current_password": PASSWORD,
                                                                "new_password": NEW_PASSWORD, "keep_tokens": True})
        assert await response.get_json() == {"ok": True, "sessions_ended": 0, "tokens_ended": 0}
        await client.post("/file/buffer", data=b"tokens live on", headers={"X-Data-Type": "text"})
        while (message := await receive(script_ws))["type"] != "buffer":
            pass
        assert message["text"] == "tokens live on"
    assert (await script.get("/file/buffer", headers=bearer)).status_code == 200


async def test_from_an_api_token_every_session_ends(app, client):
    await register(client, "alice")
    token = await make_token(client)
    script = app.test_client()
    response = await script.post("/account/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                             "keep_tokens": True},
                                 headers={"Authorization": f"Bearer {token}"})
    assert (await response.get_json()) == {"ok": True, "sessions_ended": 1, "tokens_ended": 0}
    assert (await client.get("/file/buffer")).status_code == 401
    assert (await script.get("/file/buffer", headers={"Authorization": f"Bearer {token}"})).status_code == 204


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
    token = await make_token(client)
    page = await (await client.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})).get_data(as_text=True)
    assert 'action="/account/password"' in page and 'name="current_password"' in page
    assert 'type="checkbox" id="keep-tokens" name="keep_tokens"' in page
    assert 'href="/docs"' in page
    response = await client.post("/account/password", form={"current_password": "wrong", "new_password": NEW_PASSWORD},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 403 and "The current password is not right." in await response.get_data(as_text=True)
    response = await client.post("/account/password", form={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                            "keep_tokens": "on"}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert "1 other device(s) logged out and 0 API token(s) revoked" in await response.get_data(as_text=True)
    assert (await phone.get("/file/buffer")).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await app.test_client().get("/file/buffer", headers=bearer)).status_code == 204
    # Without the box ticked, the token goes.
    response = await client.post("/account/password", form={"current_password": NEW_PASSWORD,
                                                            "new_password": "yet another fine passphrase"},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert "0 other device(s) logged out and 1 API token(s) revoked" in await response.get_data(as_text=True)
    assert (await app.test_client().get("/file/buffer", headers=bearer)).status_code == 401


async def test_a_session_ended_out_of_band_closes_its_socket_within_a_refresh(app, client, monkeypatch):
    """`cloudbuffer user passwd` on a server without Redis has no way to
    reach the server's sockets: each socket re-checks its session every
    PRESENCE_REFRESH seconds (20 s; 0.2 s here)."""
    monkeypatch.setattr(keepalive, "PRESENCE_REFRESH", 0.2)
    await register(client, "alice")
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        assert await app.db.write(sessions_model.delete_other_sessions, 1, None)  # what the CLI does
        assert await closed_code(ws) == 4401


def cli_passwd(server, *flags: str, password: str = NEW_PASSWORD) -> subprocess.CompletedProcess:
    result = subprocess.run([cloudbuffer_executable(), "user", "passwd", "alice", "--password-stdin", *flags],
                            input=password + "\n", capture_output=True, text=True, timeout=30, env=server.environment())
    assert result.returncode == 0, result.stderr
    return result


def test_cli_passwd_closes_sockets_through_redis(live_server_factory, redis_server, tmp_path):  # noqa: F811
    # The CLI is another process: it reaches the servers' sockets through
    # Redis, as every worker and host listens there.
    server = live_server_factory(tmp_path / "data", redis_url=redis_server.url)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/account/register", json={"username": "alice", "password": PASSWORD}).status_code == 201
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        token = http.post("/account/tokens", json={"name": "cron", "password": PASSWORD}).json()["token"]

    async def scenario():
        sockets = [await connect(server.ws_url + "/ws", additional_headers={"Cookie": cookie},
                                 origin=server.base_url, open_timeout=5) for _ in range(2)]
        sockets.append(await connect(server.ws_url + "/ws", additional_headers={"Authorization": f"Bearer {token}"},
                                     open_timeout=5))
        try:
            result = await asyncio.to_thread(cli_passwd, server)
            assert "1 session(s) ended, 1 API token(s) revoked" in result.stdout
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
        assert http.get("/file/buffer", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert http.post("/account/login", json={"username": "alice", "password": NEW_PASSWORD}).status_code == 200
        kept = http.post("/account/tokens", json={"name": "kept", "password": NEW_PASSWORD}).json()["token"]
    result = cli_passwd(server, "--keep-tokens", password="a third good passphrase")
    assert "1 session(s) ended, API tokens kept" in result.stdout
    assert httpx.get(server.base_url + "/file/buffer", headers={"Authorization": f"Bearer {kept}"}).status_code == 204
