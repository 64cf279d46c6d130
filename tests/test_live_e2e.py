"""Live sync end to end: the real server as 2 Hypercorn workers on a private
Redis, driven with a real WebSocket client (the `websockets` package)."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import PASSWORD
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

CONVERGE_SECONDS = 5.0


@pytest.fixture
def cluster(live_server_factory, redis_server, tmp_path):  # noqa: F811
    return live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url)


class Device:
    """One logged-in device: an httpx client with its cookie and sockets."""

    def __init__(self, server, username: str, register: bool = False) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=10)
        self.username = username
        self.register = register

    async def login(self) -> "Device":
        path = "/account/register" if self.register else "/account/login"
        response = await self.http.post(path, json={"username": self.username, "password": PASSWORD})
        assert response.status_code in (200, 201), response.text
        return self

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())}

    def socket(self, **kwargs):
        headers = kwargs.pop("headers", self.cookie_header)
        # close_timeout: after Hypercorn's 1009 close frame the TCP connection
        # stays open until the client drops it; don't wait the default 10 s.
        return connect(self.server.ws_url + "/ws", additional_headers=headers,
                       origin=kwargs.pop("origin", self.server.base_url), open_timeout=5, close_timeout=1,
                       **kwargs)

    async def post_text(self, text: str) -> dict:
        response = await self.http.post("/file/buffer", content=text.encode(), headers={"X-Data-Type": "text"})
        assert response.status_code == 201, response.text
        return response.json()

    async def close(self) -> None:
        await self.http.aclose()


async def next_message(ws, kind: str, timeout: float = CONVERGE_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


async def open_socket(device: Device, **kwargs):
    """A connected socket plus its hello and snapshot."""
    ws = await device.socket(**kwargs)
    hello = await next_message(ws, "hello")
    snapshot = await next_message(ws, "buffer")
    return ws, hello, snapshot


async def sockets_on_two_workers(device: Device, tries: int = 30):
    """Sockets until two are held by different workers (the hello names the
    worker). The processes share one listening socket and the kernel hands a
    connection to whichever is waiting, so one at a time they may all land on
    the same, idle worker: they are opened in pairs, and a socket landing on
    a worker already held is closed at once."""
    held: dict[str, object] = {}
    try:
        for _ in range(tries):
            for ws, hello, _ in await asyncio.gather(open_socket(device), open_socket(device)):
                if hello["node"] in held:
                    await ws.close()
                else:
                    held[hello["node"]] = ws
            if len(held) == 2:
                first, second = held.values()
                return first, second
    except BaseException:
        for ws in held.values():
            await ws.close()
        raise
    for ws in held.values():
        await ws.close()
    raise AssertionError(f"all {2 * tries} sockets landed on one worker")


async def converge(ws, seq: int, timeout: float = CONVERGE_SECONDS) -> dict:
    """Read buffers until this socket has reached `seq` (what a client shows)."""
    deadline = time.monotonic() + timeout
    latest = None
    while latest is None or latest["seq"] < seq:
        latest = await next_message(ws, "buffer", max(0.01, deadline - time.monotonic()))
    return latest


async def test_post_reaches_both_workers_in_order_and_no_one_else(cluster):
    laptop = await Device(cluster, "alice", register=True).login()
    phone = await Device(cluster, "alice").login()
    bob = await Device(cluster, "bob", register=True).login()
    script = await Device(cluster, "alice").login()
    a_ws, b_ws = await sockets_on_two_workers(laptop)
    p_ws, _, _ = await open_socket(phone)
    bob_ws, _, _ = await open_socket(bob)
    try:
        posted = [await script.post_text(f"change {n}") for n in range(3)]
        assert [p["seq"] for p in posted] == [1, 2, 3]
        for ws in (a_ws, b_ws, p_ws):
            received = [await next_message(ws, "buffer") for _ in range(3)]
            assert [(m["seq"], m["text"]) for m in received] == [(1, "change 0"), (2, "change 1"), (3, "change 2")]
        with pytest.raises(asyncio.TimeoutError):
            await next_message(bob_ws, "buffer", timeout=0.7)
    finally:
        for ws in (a_ws, b_ws, p_ws, bob_ws):
            await ws.close()
        for device in (laptop, phone, bob, script):
            await device.close()


async def test_offline_device_gets_latest_on_reconnect(cluster):
    laptop = await Device(cluster, "alice", register=True).login()
    phone = await Device(cluster, "alice").login()
    try:
        ws, _, snapshot = await open_socket(phone)
        assert snapshot["seq"] == 0
        await ws.close()
        for n in range(3):
            await laptop.post_text(f"while away {n}")
        ws, _, snapshot = await open_socket(phone)
        assert (snapshot["seq"], snapshot["text"]) == (3, "while away 2")
        await ws.close()
    finally:
        await laptop.close()
        await phone.close()


async def test_pubsub_connection_killed_sockets_converge(cluster, redis_server):
    laptop = await Device(cluster, "alice", register=True).login()
    a_ws, b_ws = await sockets_on_two_workers(laptop)
    try:
        await laptop.post_text("before")
        for ws in (a_ws, b_ws):
            await converge(ws, 1)
        assert redis_server.client_kill_pubsub() >= 2
        # Posted while the subscriptions are being re-established: the event
        # itself may be lost, the resync after reconnect must not be.
        await laptop.post_text("during")
        for ws in (a_ws, b_ws):
            latest = await converge(ws, 2)
            assert latest["text"] == "during"
        await laptop.post_text("after")
        for ws in (a_ws, b_ws):
            assert (await converge(ws, 3))["text"] == "after"
    finally:
        await a_ws.close()
        await b_ws.close()
        await laptop.close()


async def test_redis_down_http_keeps_working_and_sockets_resync(cluster, redis_server):
    laptop = await Device(cluster, "alice", register=True).login()
    a_ws, b_ws = await sockets_on_two_workers(laptop)
    try:
        redis_server.stop()
        posted = await laptop.post_text("stored while redis is down")
        assert posted["seq"] == 1
        deadline = time.monotonic() + CONVERGE_SECONDS
        health = (await laptop.http.get("/healthz")).json()
        while health["broker"]["status"] != "degraded" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            health = (await laptop.http.get("/healthz")).json()
        assert health["broker"] == {"backend": "redis", "status": "degraded"}
        assert (await laptop.http.get("/file/buffer")).text == "stored while redis is down"

        redis_server.start()
        for ws in (a_ws, b_ws):
            latest = await converge(ws, 1, timeout=CONVERGE_SECONDS + 3)
            assert latest["text"] == "stored while redis is down"
        deadline = time.monotonic() + CONVERGE_SECONDS
        while (await laptop.http.get("/healthz")).json()["broker"]["status"] != "ok":
            assert time.monotonic() < deadline, "broker did not recover"
            await asyncio.sleep(0.1)
    finally:
        await a_ws.close()
        await b_ws.close()
        await laptop.close()


async def test_refused_without_credentials_or_from_foreign_origin(cluster):
    with pytest.raises(InvalidStatus) as refused:
        await connect(cluster.ws_url + "/ws", origin=cluster.base_url, open_timeout=5)
    assert refused.value.response.status_code == 401
    device = await Device(cluster, "alice", register=True).login()
    try:
        with pytest.raises(InvalidStatus) as refused:
            await device.socket(origin="https://evil.example")
        assert refused.value.response.status_code == 403
    finally:
        await device.close()


async def test_logout_and_token_revoke_close_sockets_on_every_worker(cluster):
    laptop = await Device(cluster, "alice", register=True).login()
    token = (await laptop.http.post("/account/tokens", json={"name": "cli", "password": PASSWORD})).json()
    a_ws, b_ws = await sockets_on_two_workers(laptop)
    script_ws = await connect(cluster.ws_url + "/ws", open_timeout=5,
                              additional_headers={"Authorization": f"Bearer {token['token']}"})
    try:
        response = await laptop.http.delete(f"/account/tokens/{token['id']}")
        assert response.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_drain(script_ws), CONVERGE_SECONDS)
        assert closed.value.rcvd.code == 4401

        started = time.monotonic()
        response = await laptop.http.post("/account/logout")
        assert response.status_code == 200
        for ws in (a_ws, b_ws):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(_drain(ws), CONVERGE_SECONDS)
            assert closed.value.rcvd.code == 4401
        assert time.monotonic() - started < 1.5
    finally:
        await laptop.close()


async def _drain(ws) -> None:
    while True:
        await ws.recv()


async def test_cap_counts_every_worker_and_oversize_closes_and_other_users_are_fine(
        live_server_factory, redis_server, tmp_path):  # noqa: F811
    server = live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url,
                                 env={"CLOUDBUFFER_MAX_TEXT_BYTES": "1024", "CLOUDBUFFER_WS_MAX_PER_USER": "3"})
    alice = await Device(server, "alice", register=True).login()
    bob = await Device(server, "bob", register=True).login()
    bob_ws, _, _ = await open_socket(bob)
    held = []
    try:
        # Three of alice's sockets, opened together so that both workers take
        # some (retried until they do); then one more, on either worker: the
        # cap (3) counts all of them wherever they are held.
        for _ in range(20):
            opened = await asyncio.gather(*(open_socket(alice) for _ in range(3)))
            held = [ws for ws, _, _ in opened]
            if len({hello["node"] for _, hello, _ in opened}) == 2:
                break
            for ws in held:
                await ws.close()
            held = []
            assert await presence_settles(redis_server, 1), "closed sockets stayed in presence"  # bob's is left
        assert held, "every burst of three landed on one worker"
        refused = await alice.socket()
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(refused, "hello", timeout=CONVERGE_SECONDS)
        assert closed.value.rcvd.code == 1013
        assert "at most 3 per user" in closed.value.rcvd.reason

        # Hypercorn's limit is sized for a `set` of MAX_TEXT_BYTES; far beyond it the socket is closed.
        await held[0].send(json.dumps({"type": "set", "text": "z" * 200_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_drain(held[0]), CONVERGE_SECONDS)
        assert closed.value.rcvd.code == 1009

        await bob.post_text("bob is fine")
        assert (await next_message(bob_ws, "buffer"))["text"] == "bob is fine"
    finally:
        for ws in held:
            await ws.close()
        await bob_ws.close()
        await alice.close()
        await bob.close()


async def presence_settles(redis_server, sockets: int, timeout: float = CONVERGE_SECONDS) -> bool:  # noqa: F811
    """Wait until presence holds exactly `sockets` entries over all users (a
    socket's entry goes a moment after its close handshake)."""
    with redis_server.client() as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(client.zcard(key) for key in client.keys("cloudbuffer:presence:*")) == sockets:
                return True
            await asyncio.sleep(0.05)
    return False


async def test_sockets_closed_as_soon_as_they_open_leave_nothing_behind(cluster, redis_server):  # noqa: F811
    # A client gone while its socket was still being set up used to leave
    # the handler running for good, its presence entry refreshed forever
    # (a cancellation lost inside redis-py on Python 3.11).
    device = await Device(cluster, "alice", register=True).login()
    try:
        for _ in range(5):
            opened = await asyncio.gather(*(open_socket(device) for _ in range(4)))
            await asyncio.gather(*(ws.close() for ws, _, _ in opened))
        assert await presence_settles(redis_server, 0), "closed sockets stayed in presence"
    finally:
        await device.close()


async def test_graceful_shutdown_closes_sockets_with_1001(cluster):
    laptop = await Device(cluster, "alice", register=True).login()
    a_ws, b_ws = await sockets_on_two_workers(laptop)
    try:
        started = time.monotonic()
        exit_code = await asyncio.to_thread(cluster.stop)
        elapsed = time.monotonic() - started
        for ws in (a_ws, b_ws):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(_drain(ws), 2)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert exit_code == 0
        # hypercorn.toml's graceful_timeout (5 s), plus process exit on a loaded machine
        assert elapsed < 5 + 5
    finally:
        await laptop.close()


async def test_a_handshake_with_a_body_is_refused_and_holds_no_socket(live_server_factory, tmp_path):  # noqa: F811
    """Through Hypercorn (tests/live/test_connection.py checks the app's own
    refusal over raw ASGI): the answer is 400, and the refused socket is not
    counted against the user's cap of 2 afterwards."""
    server = live_server_factory(tmp_path / "data", env={"CLOUDBUFFER_WS_MAX_PER_USER": "2"})
    device = await Device(server, "alice", register=True).login()
    try:
        cookie = device.cookie_header["Cookie"]
        for framing, body in (("Content-Length: 5", b"hello"), ("Transfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n")):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nOrigin: {server.base_url}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n{framing}\r\n\r\n"
                          ).encode() + body)
            status_line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            assert status_line.startswith(b"HTTP/1.1 400"), status_line
        sockets = [(await open_socket(device))[0] for _ in range(2)]  # each got its hello and snapshot
        try:
            third = await device.socket()
            with pytest.raises(ConnectionClosed) as closed:
                await next_message(third, "hello")
            assert closed.value.rcvd.code == 1013  # the cap of 2 is what let exactly two in
        finally:
            for ws in sockets:
                await ws.close()
    finally:
        await device.close()


async def test_log_out_all_other_devices_says_who_in_the_close_reason(cluster):
    phone = await Device(cluster, "olga", register=True).login()
    laptop = await Device(cluster, "olga").login()
    phone_ws, phone_ws_elsewhere = await sockets_on_two_workers(phone)
    try:
        me = (await laptop.http.get("/account/profile")).json()["device"]
        assert (await laptop.http.patch(f"/account/sessions/{me['id']}", json={"name": "Work laptop"})).status_code == 200
        response = await laptop.http.post("/account/sessions/log-out-others")
        assert response.json() == {"ok": True, "sessions_ended": 1}
        for ws in (phone_ws, phone_ws_elsewhere):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(_drain(ws), CONVERGE_SECONDS)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "logged out from Work laptop")
        assert (await phone.http.get("/file/buffer")).status_code == 401
        assert (await laptop.http.get("/file/buffer")).status_code == 204  # this device stays
    finally:
        await phone.close()
        await laptop.close()


async def _keep_alive_request(conn, port: int, method: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = conn
    lines = [f"{method} /file/buffer HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONVERGE_SECONDS)).decode("latin-1").lower()
    length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)
    return int(head[9:12]), await reader.readexactly(length)


async def _connections_on_both_workers(server, first_request, tries: int = 40) -> list:
    """Keep-alive connections until two are held by different workers: the
    access log names each request's worker (pid) and client port."""
    held: dict[str, tuple] = {}
    for _ in range(tries):
        conn = await asyncio.open_connection("127.0.0.1", server.port)
        client = "127.0.0.1:%d" % conn[1].get_extra_info("sockname")[1]
        await first_request(conn)
        line = next(line for line in server.wait_for_log(client + ' "').splitlines() if client + ' "' in line)
        pid = line.split("] [", 1)[1].split("]", 1)[0]
        if pid in held:
            conn[1].close()
        else:
            held[pid] = conn
        if len(held) == 2:
            return list(held.values())
    pytest.fail("every connection landed on one worker")


async def test_remembered_credentials_are_refused_on_every_worker_once_revoked(cluster):
    """Each worker remembers who a credential is (server/principal_cache.py);
    a revoke, or a rename, on any worker must reach what every worker
    remembers before the revoking request is answered."""
    laptop = await Device(cluster, "alice", register=True).login()
    phone = await Device(cluster, "alice").login()
    token = (await laptop.http.post("/account/tokens", json={"name": "cli", "password": PASSWORD})).json()
    bearer = {"Authorization": f"Bearer {token['token']}"}
    port = cluster.port

    async def remember_both(conn) -> None:  # both credentials used on this connection's worker
        assert (await _keep_alive_request(conn, port, "GET", bearer))[0] == 204
        assert (await _keep_alive_request(conn, port, "GET", phone.cookie_header))[0] == 204

    connections = await _connections_on_both_workers(cluster, remember_both)
    try:
        profile = (await laptop.http.get("/account/profile", headers={"Accept": "application/json"})).json()
        phone_id = next(device["id"] for device in profile["devices"] if not device["current"])
        renamed = await laptop.http.patch(f"/account/sessions/{phone_id}", json={"name": "My phone"})
        assert renamed.status_code == 200
        for conn in connections:  # its posts carry the new name on either worker
            status, body = await _keep_alive_request(conn, port, "POST", {**phone.cookie_header, "X-Data-Type": "text"},
                                                     b"hello")
            assert status == 201 and json.loads(body)["from"] == "My phone"

        assert (await laptop.http.delete(f"/account/tokens/{token['id']}")).status_code == 200
        assert (await laptop.http.delete(f"/account/sessions/{phone_id}")).status_code == 200
        for conn in connections:
            assert (await _keep_alive_request(conn, port, "GET", bearer))[0] == 401
            assert (await _keep_alive_request(conn, port, "GET", phone.cookie_header))[0] == 401
    finally:
        for _, writer in connections:
            writer.close()
        await laptop.close()
        await phone.close()
