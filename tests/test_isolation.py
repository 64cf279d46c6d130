"""User A's token, cookie or share link never reaches user B's items: a
matrix over every route of the URL map (so a new route is in it the day it
is added) × each of A's credentials, against the real server. Every id in a
path is one of B's; nothing in any answer may carry B's data, and B's
account is untouched afterwards."""
from __future__ import annotations

import asyncio
import base64
import json
import re

import httpx
from websockets.asyncio.client import connect

from server import create_app
from tests.conftest import PASSWORD
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

# Every JSON field any route reads, so writes get as far as they can.
BODY = {"name": "renamed by A", "current_password": "guess", "new_password": "a different password"}
B_TEXT = b"B-secret-text-7f3a"
B_FILE = b"B-secret-file-91c2"
B_SHARED = b"B-secret-shared-55d0"
B_NAMES = ("b-secret-name.txt", "b-shared-name.txt")
B_MARKERS = (B_TEXT, B_FILE, B_SHARED, *(name.encode() for name in B_NAMES), b"bob-secret-device")


def account(server, username: str) -> tuple[httpx.Client, dict, str]:
    client = httpx.Client(base_url=server.base_url, timeout=10, headers={"Accept": "application/json"})
    device = client.post("/account/register", json={"username": username, "password": PASSWORD}).json()["device"]
    assert client.patch(f"/account/sessions/{device['id']}",
                        json={"name": f"{username}-secret-device"}).status_code == 200
    token = client.post("/account/tokens", json={"name": f"{username} token", "password": PASSWORD}).json()["token"]
    return client, device, token


def assert_nothing_of_b(where: str, content: bytes) -> None:
    for marker in B_MARKERS:
        assert marker not in content, f"{where} leaked {marker!r}"


def test_a_never_reaches_b(live_server_factory, tmp_path):  # noqa: F811
    server = live_server_factory(env={"CLOUDBUFFER_RATE_LIMITS": "false"})
    b, b_device, b_token = account(server, "bob")
    b_file = b.post("/file/buffer", content=B_FILE,
                    headers={"X-Data-Type": "file", "X-File-Name": B_NAMES[0]}).json()
    b_text = b.post("/file/buffer", content=B_TEXT, headers={"X-Data-Type": "text"}).json()
    b_share = b.post("/file/load", files={"file": (B_NAMES[1], B_SHARED)}).json()
    b_item_share = b.post(f"/file/buffer/items/{b_file['id']}/share").json()
    b_profile = b.get("/account/profile").json()
    b_pairing = b.post("/account/pairings").json()
    b_upload = b.post("/file/uploads", content=B_FILE[:4], headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(B_FILE)), "Content-Type": "application/offset+octet-stream",
        "Upload-Metadata": "filename " + base64.b64encode(B_NAMES[0].encode()).decode()}).json()
    b_ids = {
        "pairing_id": [b_pairing["id"]],
        "item_id": [b_text["id"], b_file["id"]],
        "session_id": [b_device["id"]],
        "token_id": [t["id"] for t in b_profile["tokens"]],
        "share_id": [s["id"] for s in b_profile["shares"]],
        "upload_id": [b_upload["id"]],
    }
    assert b_share["token"] and b_item_share["token"]

    a, _, a_token = account(server, "alice")
    a_share = a.post("/file/load", files={"file": ("a.txt", b"alice's own")}).json()
    cookie = "; ".join(f"{k}={v}" for k, v in a.cookies.items())
    credentials = {
        "A's token": {"Authorization": f"Bearer {a_token}"},
        "A's cookie": {"Cookie": cookie, "Origin": server.base_url},
        "A's share link only": {},
    }

    rules = [rule for rule in create_app({"DATA_DIR": str(tmp_path / "map")}).url_map.iter_rules()
             if not rule.websocket]
    # Logging out and changing the password end A's own session: last.
    rules.sort(key=lambda rule: rule.rule in ("/account/logout", "/account/password"))
    checked = 0
    # A new connection per request: Hypercorn closes a kept-alive connection
    # when a handler answers before reading the whole body (a refused write),
    # and a client reusing it at that moment sees a reset, not an answer.
    with httpx.Client(base_url=server.base_url, timeout=10,
                      limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for label, headers in credentials.items():
            for rule in rules:
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    combos = [{}]
                    for name in rule.arguments:
                        values = b_ids.get(name) or {"token": [a_share["token"]], "version": ["x"],
                                                     "name": ["x.js"], "filename": ["style.css"]}[name]
                        combos = [{**c, name: v} for c in combos for v in values]
                    for args in combos:
                        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(args[m.group(1)]), rule.rule)
                        if rule.endpoint in ("files.get_file", "files.get_qr"):
                            path += f"?token={a_share['token']}"
                        body = BODY if method in ("POST", "PATCH") else None
                        response = http.request(method, path, headers={"Accept": "application/json", **headers},
                                                json=body)
                        where = f"{label}: {method} {path} → {response.status_code}"
                        assert response.status_code < 500, where
                        assert_nothing_of_b(where, response.content)
                        if any(name in b_ids for name in rule.arguments):
                            # An id of B's is, to A, an id that does not exist.
                            assert response.status_code in (401, 403, 404), where
                        checked += 1
    assert checked > 100

    # A's live socket never hears of B's buffer.
    async def socket_of_a() -> list[bytes]:
        heard = []
        async with connect(server.ws_url + "/ws", additional_headers={"Authorization": f"Bearer {a_token}"},
                           open_timeout=5) as ws:
            for _ in range(2):
                heard.append((await asyncio.wait_for(ws.recv(), 5)).encode())
            await asyncio.to_thread(b.post, "/file/buffer", content=B_TEXT + b" again",
                                    headers={"X-Data-Type": "text"})
            try:
                while True:
                    heard.append((await asyncio.wait_for(ws.recv(), 1.0)).encode())
            except asyncio.TimeoutError:
                pass
        return heard

    for message in asyncio.run(socket_of_a()):
        assert_nothing_of_b("A's socket", message)
        assert json.loads(message).get("type") != "buffer" or json.loads(message)["seq"] <= 1

    # B's account is as it was: items, sessions, tokens and links all there.
    with httpx.Client(base_url=server.base_url, timeout=10, headers={"Authorization": f"Bearer {b_token}"}) as bob:
        items = bob.get("/file/buffer/items").json()["items"]
        assert {b_text["id"], b_file["id"]} <= {item["id"] for item in items}
        assert bob.get(f"/file/buffer/items/{b_file['id']}").content == B_FILE
        profile = bob.get("/account/profile").json()
        assert [d["id"] for d in profile["devices"]] == [b_device["id"]]
        assert profile["devices"][0]["name"] == "bob-secret-device"
        assert [t["id"] for t in profile["tokens"]] == b_ids["token_id"]
        assert [s["id"] for s in profile["shares"]] == b_ids["share_id"]
    assert b.get("/file/buffer").status_code == 200  # B's cookie session still works
    assert b.get(f"/account/pairings/{b_pairing['id']}").json()["status"] == "open"  # nobody claimed or answered it
    assert httpx.get(b_share["url"]).content == B_SHARED
    b.close()
    a.close()
