"""No plaintext on the server side (issue 19): for an encrypted account, over
a real `cloudbuffer serve` with a real redis-server, every way of writing
(an HTTP text, a streamed file, a share link, the share target, the socket's
`set`), every way of reading (downloads, the history, the live `buffer`
messages) and the refusals (a plaintext post, a search) leave the test's
distinctive plaintexts nowhere: not in the database file or its WAL, not in
the files dir, not in the server's log, not on the Redis wire (MONITOR on
the test's own redis-server, for the whole test). Each place is also shown
to hold what it should (the ciphertext, the request lines, the PUBLISHes),
so a check that looked in the wrong place would fail."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import PASSWORD
from tests.e2e_keys import Account, KeyPair, attest, b64u, encrypt, headers, unb64u, wrap
from tests.live_server import LiveServer
from tests.redis_server import redis_server  # noqa: F401  (fixture)

SECRET_TEXT = b"tangerine-ocelot-4417 the password is hunter2-zebra"
SECRET_FILE = b"%PDF-1.7 walrus-quasar-9921 " + os.urandom(200_000) + b" walrus-quasar-9921 end"
SECRET_SHARE = b"marmalade-yeti-5532 shared with the world"
SECRET_SET = b"pistachio-narwhal-6643 typed on a phone"
SECRET_SHEET = b"saffron-axolotl-7754 from the share sheet"
REFUSED_PLAINTEXT = b"cardamom-lemur-8865 sent in plaintext by mistake"
SEARCHED = "juniper-okapi-9976"
SECRETS = [SECRET_TEXT, b"walrus-quasar-9921", SECRET_SHARE, SECRET_SET, SECRET_SHEET, REFUSED_PLAINTEXT,
           SEARCHED.encode(), b"holiday-plans.pdf", b"application/pdf"]
WAIT = 15.0


class Monitor:
    """MONITOR on a redis-server, every byte of it kept, in a thread."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk

    def stop(self) -> bytes:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        return bytes(self.data)


async def next_message(ws, kind: str) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


@pytest.fixture
def server(tmp_path, redis_server):  # noqa: F811
    live = LiveServer(tmp_path / "data", redis_url=redis_server.url)
    monitor = Monitor(redis_server.port)
    live.start()
    yield live, monitor
    live.stop()


def everything_stored(data_dir) -> dict[str, bytes]:
    """Every file of the data dir (database, WAL, uploads, temp files) and the log."""
    found = {}
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            found[str(path.relative_to(data_dir))] = path.read_bytes()
    return found


async def test_an_encrypted_account_leaves_no_plaintext_on_the_server_side(server):
    live, monitor = server
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        registered = await http.post("/account/register", json={"username": "secretive", "password": PASSWORD})
        user_id, device = registered.json()["id"], f"session:{registered.json()['device']['id']}"
        account = Account(user_id)
        enabled = await http.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))
        assert enabled.status_code == 200, enabled.text
        token = (await http.post("/account/tokens", json={"name": "phone", "password": PASSWORD})).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        phone_device = (await http.get("/account/e2e", headers=bearer)).json()["device"]
        phone_key = KeyPair()
        assert (await http.put("/account/e2e/device", headers=bearer, json={
            "public_key": phone_key.public_b64u,
            "attest": attest(account.keys[1], user_id, phone_device, phone_key.public_b64u),
            "wraps": [{"epoch": 1, "blob": wrap(account.keys[1], 1, phone_key.public_b64u)}]})).status_code == 200

        laptop_ws = await connect(live.ws_url + "/ws", origin=live.base_url, open_timeout=5, close_timeout=1,
                                  additional_headers={"Cookie": "; ".join(f"{k}={v}" for k, v in http.cookies.items())})
        phone_ws = await connect(live.ws_url + "/ws", additional_headers=bearer, open_timeout=5, close_timeout=1)
        for ws in (laptop_ws, phone_ws):
            await next_message(ws, "buffer")

        # An encrypted text over HTTP; its `buffer` message carries the blobs and the ciphertext.
        text = account.item(SECRET_TEXT)
        assert (await http.post("/file/buffer", content=text.body, headers=headers(text))).status_code == 201
        pushed = await next_message(phone_ws, "buffer")
        assert (pushed["encrypted"], pushed["key"], pushed["meta"]) == ("aes128gcm", text.key, text.meta)
        assert "text" not in pushed and "filename" not in pushed
        assert account.open_item(pushed["key"], pushed["meta"], unb64u(pushed["ciphertext"]))[2] == SECRET_TEXT

        # A streamed file of several records, downloaded whole and by a range.
        document = account.item(SECRET_FILE, "file", name="holiday-plans.pdf", mime="application/pdf")
        posted = await http.post("/file/buffer", content=document.body, headers=headers(document, "file"))
        assert posted.status_code == 201, posted.text
        pushed = await next_message(phone_ws, "buffer")
        assert "ciphertext" not in pushed and pushed["kind"] == "file"
        got = await http.get(f"/file/buffer/items/{posted.json()['id']}", headers=bearer)
        assert account.open_item(got.headers["X-Encrypted-Key"], got.headers["X-Encrypted-Meta"],
                                 got.content)[2] == SECRET_FILE
        head = await http.get("/file/buffer", headers={**bearer, "Range": "bytes=0-20"})
        assert head.status_code == 206 and head.content == document.body[:21]

        # A share link: no key blob; the key would be in the link's fragment.
        shared = account.item(SECRET_SHARE, "file", name="holiday-plans.pdf", mime="application/pdf")
        link = await http.post("/file/load", content=shared.body, headers={
            **headers(shared, "file", with_key=False), "Accept": "application/json"})
        assert link.status_code == 201, link.text
        fetched = await http.get(f"/file/get/{link.json()['token']}")
        assert fetched.content == shared.body and "X-Encrypted-Key" not in fetched.headers

        # The share target as the app's worker posts it.
        sheet = account.item(SECRET_SHEET)
        assert (await http.post("/share-target", content=sheet.body, headers={
            **headers(sheet), "Accept": "application/json"})).status_code == 201
        await next_message(phone_ws, "buffer")

        # The socket's `set`, encrypted on the phone.
        typed = account.item(SECRET_SET)
        await phone_ws.send(json.dumps({"type": "set", "encrypted": "aes128gcm", "key": typed.key, "meta": typed.meta,
                                        "ciphertext": b64u(typed.body), "id": "s1"}))
        assert (await next_message(phone_ws, "ack"))["id"] == "s1"
        pushed = await next_message(laptop_ws, "buffer")
        while pushed["key"] != typed.key:
            pushed = await next_message(laptop_ws, "buffer")
        assert account.open_item(pushed["key"], pushed["meta"], unb64u(pushed["ciphertext"]))[2] == SECRET_SET
        await phone_ws.send(json.dumps({"type": "set", "text": REFUSED_PLAINTEXT.decode(), "id": "s2"}))
        refused = await next_message(phone_ws, "error")
        assert refused["code"] == "encrypted_account" and "cloudbuffer copy" in refused["message"]

        # What the server must refuse: plaintext, and searching.
        plain = await http.post("/file/buffer", content=REFUSED_PLAINTEXT, headers={"X-Data-Type": "text"})
        assert plain.status_code == 409 and plain.json()["error"] == "encrypted_account"
        assert (await http.get(f"/file/buffer/items?q={SEARCHED}")).status_code == 409
        history = (await http.get("/file/buffer/items")).json()["items"]
        assert {item["key"] for item in history} == {text.key, document.key, sheet.key, typed.key}

        # Revoking the phone: the laptop is told a rotation is due.
        assert (await http.delete(f"/account/tokens/{phone_device.split(':')[1]}")).status_code == 200
        assert await next_message(laptop_ws, "e2e") == {"type": "e2e", "epoch": 1, "rotation_needed": True}
        await laptop_ws.close()
        await phone_ws.close()

    live.stop()  # the log and the database as they end up, WAL and all
    wire = monitor.stop()
    stored = everything_stored(live.data_dir)
    assert any(name.endswith("-wal") for name in stored) or "cloudbuffer.sqlite3" in stored
    # Each place holds what it should: else the checks below would prove nothing.
    database = b"".join(data for name, data in stored.items() if name.startswith("cloudbuffer.sqlite3"))
    assert text.key.encode() in database and text.body in database
    uploads = b"".join(data for name, data in stored.items() if name.startswith("files/"))
    assert document.body in uploads and shared.body in uploads
    log = b"".join(data for name, data in stored.items() if name.endswith(".log"))
    assert b"POST /file/buffer" in log and b"/file/buffer/items" in log
    assert b"PUBLISH" in wire and text.key.encode() in wire and typed.key.encode() in wire

    for secret in SECRETS:
        for name, data in stored.items():
            assert secret not in data, f"{secret!r} is in {name}"
        assert secret not in wire, f"{secret!r} went over the Redis wire"


async def test_the_largest_meta_blob_passes_the_real_servers_and_httpx_heads(server):
    """docs/e2e.md caps the meta blob at 6144 characters so a request head
    (Hypercorn: 16 KiB) and a download's response head (httpx/h11: 16 KiB)
    hold it with the key blob, cookies and security headers."""
    live, _ = server
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        registered = await http.post("/account/register", json={"username": "thumbnails", "password": PASSWORD})
        account = Account(registered.json()["id"])
        device = f"session:{registered.json()['device']['id']}"
        assert (await http.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))).status_code == 200
        item = account.item(b"a photo", "file", name="photo.jpg", mime="image/jpeg")
        item.meta = b64u(encrypt(os.urandom(6144 * 3 // 4 - 21 - 17), item.item_key))
        assert len(item.meta) == 6144
        posted = await http.post("/file/buffer", content=item.body, headers=headers(item, "file"))
        assert posted.status_code == 201, posted.text
        got = await http.get("/file/buffer")
        assert got.status_code == 200 and got.headers["X-Encrypted-Meta"] == item.meta
        item.meta = b64u(encrypt(os.urandom(6144 * 3 // 4 - 21 - 17 + 3), item.item_key))
        refused = await http.post("/file/buffer", content=item.body, headers=headers(item, "file"))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_ciphertext"
