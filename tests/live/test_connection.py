"""The live socket's connection through Quart's test client, on both brokers
(its keep-alive: test_keepalive.py; its messages alone: test_protocol.py)."""
from __future__ import annotations

import asyncio
import json

import pytest
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from server.services import services
from server import create_app
from tests.conftest import make_token, register

ORIGIN = {"Origin": "http://localhost"}


async def receive(ws, timeout: float = 3.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.receive(), timeout))


async def receive_until(ws, kind: str, timeout: float = 3.0) -> dict:
    while True:
        message = await receive(ws, timeout)
        if message["type"] == kind:
            return message


async def open_device(ws) -> tuple[dict, dict]:
    """Read what every socket gets first: hello, then the buffer snapshot."""
    hello = await receive(ws)
    assert hello["type"] == "hello"
    snapshot = await receive(ws)
    assert snapshot["type"] == "buffer"
    return hello, snapshot


@pytest.fixture(params=["memory", "redis"])
async def live_app(request, tmp_path):
    """The app on the memory broker and on a private Redis."""
    settings = {"DATA_DIR": str(tmp_path / "data")}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        settings["REDIS_URL"] = server.url
    app = create_app(settings)
    async with app.test_app():
        yield app


async def test_connect_sends_hello_snapshot_and_devices(live_app):
    client = live_app.test_client()
    await register(client, "alice")
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        hello, snapshot = await open_device(ws)
        assert hello["device"]["kind"] == "session"
        assert hello["device"]["id"].startswith("s")
        assert snapshot == {"type": "buffer", "seq": 0, "kind": None}
        devices = await receive_until(ws, "devices")
        assert [d["id"] for d in devices["devices"]] == [hello["device"]["id"]]


async def test_post_reaches_every_device_of_the_user_only(live_app):
    alice = live_app.test_client()
    await register(alice, "alice")
    bob = live_app.test_client()
    await register(bob, "bob")
    async with alice.websocket("/ws", headers=ORIGIN) as a_ws, bob.websocket("/ws", headers=ORIGIN) as b_ws:
        await open_device(a_ws)
        await open_device(b_ws)
        response = await alice.post("/file/buffer", data=b"from the laptop", headers={"X-Data-Type": "text"})
        assert response.status_code == 201
        event = await receive_until(a_ws, "buffer")
        assert (event["seq"], event["kind"], event["text"]) == (1, "text", "from the laptop")
        # Bob's socket gets nothing about alice's buffer.
        with pytest.raises(asyncio.TimeoutError):
            await receive_until(b_ws, "buffer", timeout=0.5)


async def test_set_over_the_socket_stores_and_acks(live_app):
    client = live_app.test_client()
    await register(client, "alice")
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        await ws.send(json.dumps({"type": "set", "text": "via socket", "id": "c1"}))
        # The ack and the change's own `buffer` event come in either order.
        got = {}
        while len(got) < 2:
            message = await receive(ws)
            if message["type"] in ("ack", "buffer"):
                got[message["type"]] = message
        assert got["ack"] == {"type": "ack", "id": "c1", "seq": 1}
        assert got["buffer"]["text"] == "via socket"
    response = await client.get("/file/buffer")
    assert await response.get_data(as_text=True) == "via socket"


async def test_large_text_is_not_inlined(live_app):
    client = live_app.test_client()
    await register(client, "alice")
    big = "x" * (64 * 1024 + 1)
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        await client.post("/file/buffer", data=big.encode(), headers={"X-Data-Type": "text"})
        event = await receive_until(ws, "buffer")
        assert event["size"] == len(big) and "text" not in event


async def test_bad_messages_get_errors_and_socket_stays_open(app, alice):
    async with alice.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        await ws.send("not json")
        assert (await receive_until(ws, "error"))["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "launch"}))
        assert (await receive_until(ws, "error"))["code"] == "unknown_type"
        await ws.send(json.dumps({"type": "set", "text": 42}))
        assert (await receive_until(ws, "error"))["code"] == "invalid_message"
        too_long = "y" * (services(app).settings.max_text_bytes + 1)
        await ws.send(json.dumps({"type": "set", "text": too_long}))
        assert (await receive_until(ws, "error"))["code"] == "too_large"
        await ws.send(json.dumps({"type": "ping", "t": 7}))
        assert await receive_until(ws, "pong") == {"type": "pong", "t": 7}


async def test_flood_gets_rate_limited_then_closed(alice):
    async with alice.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        for _ in range(120):
            await ws.send(json.dumps({"type": "ping"}))
        errors = 0
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                message = await receive(ws)
                errors += message["type"] == "error" and message["code"] == "rate_limited"
        assert errors > 0
        assert closed.value.args[0] == 1008


async def test_no_credentials_refused_before_accept(client):
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/ws", headers=ORIGIN) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize("origin", ["https://evil.example", "http://l\u00f6calhost"])
async def test_foreign_origin_refused(alice, origin):
    with pytest.raises(WebsocketResponseError) as refused:
        async with alice.websocket("/ws", headers={"Origin": origin}) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 403
    assert (await refused.value.response.get_json())["error"] == "cross_origin"


async def test_missing_origin_needs_a_bearer_token(app, alice):
    token = await make_token(alice)
    with pytest.raises(WebsocketResponseError) as refused:
        async with alice.websocket("/ws") as ws:
            await ws.receive()
    assert refused.value.response.status_code == 403
    scripted = app.test_client()
    async with scripted.websocket("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        hello, _ = await open_device(ws)
        assert hello["device"]["kind"] == "token"


async def test_logout_closes_the_devices_socket(live_app):
    client = live_app.test_client()
    await register(client, "alice")
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        response = await client.post("/account/logout", headers={"Accept": "application/json"})
        assert response.status_code == 200
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                await receive(ws)
        assert closed.value.args[0] == 4401


async def test_token_revoke_closes_only_that_socket(live_app):
    browser = live_app.test_client()
    await register(browser, "alice")
    token = await make_token(browser)
    tokens = await (await browser.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    token_id = tokens["tokens"][0]["id"]
    script = live_app.test_client()
    async with browser.websocket("/ws", headers=ORIGIN) as b_ws, \
            script.websocket("/ws", headers={"Authorization": f"Bearer {token}"}) as s_ws:
        await open_device(b_ws)
        await open_device(s_ws)
        response = await browser.delete(f"/account/tokens/{token_id}", headers={"Accept": "application/json"})
        assert response.status_code == 200
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                await receive(s_ws)
        assert closed.value.args[0] == 4401
        await browser.post("/file/buffer", data=b"still here", headers={"X-Data-Type": "text"})
        assert (await receive_until(b_ws, "buffer"))["text"] == "still here"


async def test_connection_cap_per_user(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "WS_MAX_PER_USER": 2})
    async with app.test_app():
        alice = app.test_client()
        await register(alice, "alice")
        bob = app.test_client()
        await register(bob, "bob")
        async with alice.websocket("/ws", headers=ORIGIN) as one, alice.websocket("/ws", headers=ORIGIN) as two:
            await open_device(one)
            await open_device(two)
            async with alice.websocket("/ws", headers=ORIGIN) as three:
                with pytest.raises(WebsocketDisconnectError) as closed:
                    await receive(three)
                assert closed.value.args[0] == 1013
            async with bob.websocket("/ws", headers=ORIGIN) as other_user:
                hello, _ = await open_device(other_user)
                assert hello["type"] == "hello"


async def test_an_accepted_socket_lets_go_of_its_request_headers(app, alice, monkeypatch):
    from server.asgi_socket import ASGISocket

    accepted = []
    forget = ASGISocket.forget_request_headers

    def spy(socket: ASGISocket) -> None:
        assert socket.accepted and any(name == b"cookie" for name, _ in socket.scope["headers"])  # it authenticated with them
        forget(socket)
        accepted.append(socket)

    monkeypatch.setattr(ASGISocket, "forget_request_headers", spy)
    async with alice.websocket("/ws", headers={**ORIGIN, "User-Agent": "Mozilla/5.0 " + "x" * 200}) as ws:
        await open_device(ws)
        (socket,) = accepted
        assert socket.scope["headers"] == []
        # Still the same device afterwards: it reads, posts and is answered.
        await ws.send(json.dumps({"type": "set", "text": "after", "id": "a"}))
        assert (await receive_until(ws, "ack"))["id"] == "a"
        await alice.post("/file/buffer", data=b"from http", headers={"X-Data-Type": "text"})
        assert (await receive_until(ws, "buffer"))["text"] in ("after", "from http")


async def test_plain_http_to_the_socket_address_is_a_404(client):
    # /ws is no Quart route: the live socket is served beside Quart (LiveSocketsFirst).
    response = await client.get("/ws", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"


async def test_other_websocket_paths_are_a_404(alice):
    for path in ("/ws/other", "/", "/file/buffer"):
        with pytest.raises(WebsocketResponseError) as refused:
            async with alice.websocket(path, headers=ORIGIN) as ws:
                await ws.receive()
        assert refused.value.response.status_code == 404
        assert (await refused.value.response.get_json())["error"] == "not_found"


async def test_an_error_before_accepting_is_a_logged_500_with_a_json_body(app, alice, monkeypatch, caplog):
    async def broken(user_id):
        raise RuntimeError("presence exploded")

    monkeypatch.setattr(services(app).presence, "connections", broken)
    with pytest.raises(WebsocketResponseError) as refused:
        async with alice.websocket("/ws", headers=ORIGIN) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 500
    assert (await refused.value.response.get_json())["error"] == "internal_error"
    # Logged by the app's one error path (errors.py), as a request's would be.
    assert "unhandled error on GET /ws" in caplog.text and "presence exploded" in caplog.text
    assert services(app).live_counts == {}  # the count taken for the socket was given back


async def test_an_error_after_accepting_closes_with_1011_and_the_worker_serves_on(app, alice, monkeypatch, caplog):
    from server import buffer

    real_snapshot = buffer.snapshot

    async def broken(user_id):
        raise RuntimeError("snapshot exploded")

    monkeypatch.setattr(buffer, "snapshot", broken)
    async with alice.websocket("/ws", headers=ORIGIN) as ws:
        assert (await receive(ws))["type"] == "hello"
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(ws)
    assert closed.value.args[0] == 1011
    assert "snapshot exploded" in caplog.text
    monkeypatch.setattr(buffer, "snapshot", real_snapshot)
    async with alice.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)


# --- the handshake as raw ASGI: bytes and scopes the test client cannot send --------------------


async def raw_socket(app, headers: list[tuple[bytes, bytes]], path: str = "/ws", root_path: str = "",
                     scheme: str = "ws", http_answers: bool = True) -> list[dict]:
    """Open /ws through the app's ASGI callable and leave at once; what the
    app sent back."""
    sent: list[dict] = []
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "websocket.send" and json.loads(message["text"])["type"] == "buffer":
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})  # the client leaves

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": scheme, "http_version": "1.1",
             "path": path, "raw_path": path.encode(), "root_path": root_path, "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("localhost", 80),
             "subprotocols": [], "extensions": {"websocket.http.response": {}} if http_answers else {}}
    await asyncio.wait_for(app(scope, inbox.get, send), 5)
    return sent


def session_cookie_of(client) -> bytes:
    (cookie,) = [c for c in client.cookie_jar if c.name == "cloudbuffer_session"]
    return f"cloudbuffer_session={cookie.value}".encode()


async def test_a_foreign_latin1_cookie_beside_the_session_still_opens_the_socket(app, alice):
    # Another app on the same host may set a cookie with a Latin-1 byte.
    sent = await raw_socket(app, [(b"host", b"localhost"), (b"origin", b"http://localhost"),
                                  (b"cookie", b"pref=caf\xe9; " + session_cookie_of(alice))])
    assert sent[0] == {"type": "websocket.accept"}
    assert json.loads(sent[1]["text"])["type"] == "hello"
    assert services(app).live_counts == {}  # and all given back once the client left


async def test_a_handshake_with_a_body_is_refused(app, alice):
    for extra in ((b"content-length", b"5"), (b"transfer-encoding", b"chunked")):
        sent = await raw_socket(app, [(b"host", b"localhost"), (b"origin", b"http://localhost"), extra,
                                      (b"cookie", session_cookie_of(alice))])
        assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 400
        assert json.loads(sent[1]["body"])["error"] == "bad_request"


async def test_the_own_origin_is_the_host_as_quart_reads_it(app):
    # wss on :443 is https://example.com: the Origin passes, and only the missing credentials are refused.
    sent = await raw_socket(app, [(b"host", b"example.com:443"), (b"origin", b"https://example.com")], scheme="wss")
    assert sent[0]["status"] == 401
    sent = await raw_socket(app, [(b"host", b"exa mple.com"), (b"origin", b"http://exa mple.com")])
    assert sent[0]["status"] == 403  # a malformed Host is no origin at all


async def test_the_socket_is_found_below_a_root_path(app, alice):
    token = (await make_token(alice)).encode()
    headers = [(b"host", b"localhost"), (b"authorization", b"Bearer " + token)]
    sent = await raw_socket(app, headers, path="/cb/ws", root_path="/cb")
    assert sent[0] == {"type": "websocket.accept"}
    sent = await raw_socket(app, headers, path="/ws", root_path="/cb")
    assert sent[0]["status"] == 404


async def test_a_refusal_is_answered_by_the_apps_error_path_over_http(app):
    """Before the accept, a refusal is an HTTP answer made by errors.py, as a
    request's would be: the JSON shape, its length, the security headers."""
    sent = await raw_socket(app, [(b"host", b"localhost"), (b"origin", b"https://evil.example")])
    start, *bodies = sent
    assert start["type"] == "websocket.http.response.start" and start["status"] == 403
    headers = dict(start["headers"])
    body = b"".join(part["body"] for part in bodies)
    assert headers[b"content-type"] == b"application/json" and int(headers[b"content-length"]) == len(body)
    assert headers[b"cache-control"] == b"no-store" and headers[b"x-content-type-options"] == b"nosniff"
    assert json.loads(body) == {"error": "cross_origin",
                                "message": "WebSocket connections from other sites are not allowed."}
    assert bodies[-1]["more_body"] is False and all(part["type"] == "websocket.http.response.body" for part in bodies)


async def test_a_refusal_without_the_http_answer_extension_is_a_policy_close(app):
    sent = await raw_socket(app, [(b"host", b"localhost")], http_answers=False)  # no Origin, no token
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_the_handshake_is_read_as_quart_reads_a_request(app):
    """Quart's own Headers and parsers: a repeated header's first value, every
    Cookie header, Latin-1 bytes kept, the Host without its default port."""
    from server.live.connection import _handshake

    scope = {"type": "websocket", "scheme": "wss", "server": ("10.0.0.1", 443), "path": "/ws", "query_string": b"",
             "headers": [(b"Origin", b"http://a"), (b"origin", b"http://b"), (b"Cookie", b"one=1"),
                         (b"cookie", b"two=caf\xe9"), (b"X-Other", b"\xe9"), (b"host", b"example.com:443")]}
    async with app.app_context():
        handshake = _handshake(scope)
    assert handshake.headers.get("origin") == "http://a"
    assert dict(handshake.cookies) == {"one": "1", "two": "café"}
    assert handshake.headers["x-other"] == "é"
    assert handshake.host == "example.com"
async def test_an_encrypted_account_on_the_socket(app, client):
    """The snapshot carries the blobs; a `set` must be encrypted, under the
    current epoch, and aes128gcm; each refusal is an `error`, the socket
    stays open."""
    from tests.blueprints.test_e2e import enabled
    from tests.e2e_keys import b64u, headers

    account, _ = await enabled(client)
    item = account.item(b"posted before the socket opened")
    assert (await client.post("/file/buffer", data=item.body, headers=headers(item))).status_code == 201
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        _, snapshot = await open_device(ws)
        assert (snapshot["encrypted"], snapshot["key"], snapshot["meta"]) == ("aes128gcm", item.key, item.meta)
        assert snapshot["ciphertext"] == b64u(item.body) and "text" not in snapshot

        fresh = account.item(b"typed")
        base = {"type": "set", "encrypted": "aes128gcm", "key": fresh.key, "meta": fresh.meta,
                "ciphertext": b64u(fresh.body)}
        account.keys[2] = bytes(32)
        stale = account.item(b"later", epoch=2)
        for message, code in (({"type": "set", "text": "plain"}, "encrypted_account"),
                              ({**base, "ciphertext": "not base64!"}, "invalid_ciphertext"),
                              ({**base, "ciphertext": b64u(fresh.body[:25])}, "invalid_ciphertext"),
                              ({**base, "encrypted": "aesgcm"}, "invalid_ciphertext"),
                              ({**base, "key": stale.key}, "stale_key")):
            await ws.send(json.dumps(message))
            error = await receive_until(ws, "error")
            assert error["code"] == code, error
        await ws.send(json.dumps({**base, "id": "ok"}))
        assert (await receive_until(ws, "ack"))["id"] == "ok"
        pushed = await receive_until(ws, "buffer")
        assert pushed["key"] == fresh.key and pushed["ciphertext"] == b64u(fresh.body)


async def test_enabling_and_rotating_are_pushed_as_e2e_messages(app, client):
    from tests.blueprints.test_e2e import register_user, rotation
    from tests.conftest import PASSWORD
    from tests.e2e_keys import Account

    user_id, device = await register_user(client, "alice")
    account = Account(user_id)
    async with client.websocket("/ws", headers=ORIGIN) as ws:
        await open_device(ws)
        assert (await client.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))
                ).status_code == 200
        assert await receive_until(ws, "e2e") == {"type": "e2e", "epoch": 1, "rotation_needed": False}
        body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
        assert (await client.post("/account/e2e/epochs", json=body)).status_code == 200
        assert await receive_until(ws, "e2e") == {"type": "e2e", "epoch": 2, "rotation_needed": False}
