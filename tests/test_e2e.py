"""End to end: the real `cloudbuffer serve` on a free port and a temp data dir,
driven over real sockets with httpx the way curl and scripts drive it."""
from __future__ import annotations

import hashlib
import os
import re
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.helpers import COOKIE_NAME
from tests.live_server import LiveServer, live_server_factory  # noqa: F401  (fixture)

MIB = 1024 * 1024
TIMEOUT = httpx.Timeout(30.0)


# --- servers ---------------------------------------------------------------------------------------
# Starting a server takes a second or two, so the tests share a few, each
# configured for what it exercises, and register few accounts on each.


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Generous upload limit (for the 50 MiB test) and a small file cap."""
    live = LiveServer(tmp_path_factory.mktemp("e2e-main"),
                      env={"CLOUDBUFFER_MAX_UPLOAD_BYTES": str(64 * MIB), "CLOUDBUFFER_MAX_FILES": "3"})
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A 1 MiB upload limit, a 1.5 MiB quota, a 2 s lifetime and a sweep every
    second: for the tests that send too much (its data dir must end up empty
    of files) and the expiry test."""
    live = LiveServer(tmp_path_factory.mktemp("e2e-small"),
                      env={"CLOUDBUFFER_MAX_UPLOAD_BYTES": str(MIB), "CLOUDBUFFER_QUOTA_BYTES": str(3 * MIB // 2),
                           "CLOUDBUFFER_EXPIRE_SECONDS": "2", "CLOUDBUFFER_SWEEP_SECONDS": "1"})
    live.start()
    yield live
    live.stop()


def client_for(server: LiveServer, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=TIMEOUT, **kwargs)


@contextmanager
def register(server: LiveServer, username: str) -> Iterator[httpx.Client]:
    """A client with a new account's session cookie, as `curl -c` keeps it."""
    with client_for(server) as client:
        response = client.post("/account/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        assert COOKIE_NAME in client.cookies
        yield client


@contextmanager
def login(server: LiveServer, username: str) -> Iterator[httpx.Client]:
    with client_for(server) as client:
        response = client.post("/account/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        yield client


@pytest.fixture(scope="module")
def alice(server):
    with register(server, "alice") as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code and body["message"]


def files_and_temps(server: LiveServer) -> tuple[list[str], list[str]]:
    return sorted(os.listdir(server.data_dir / "files")), sorted(os.listdir(server.data_dir / "tmp"))


def wait_until_empty(server: LiveServer, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """The data dir's files/ and tmp/ once they are empty (or as they are at
    the timeout): a refused upload's temp file goes when its handler ends."""
    deadline = time.monotonic() + timeout
    while True:
        state = files_and_temps(server)
        if state == ([], []) or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


# --- accounts --------------------------------------------------------------------------------------


def test_register_login_and_text_round_trip(server, alice):
    response = alice.post("/file/buffer", content="hello from curl ✓".encode(), headers={"X-Data-Type": "text"})
    assert response.status_code == 201
    created = response.json()
    assert created["type"] == "text" and created["size"] == len("hello from curl ✓".encode())

    with login(server, "ALICE") as laptop:  # usernames are case-insensitive
        response = laptop.get("/file/buffer")
        assert response.status_code == 200
        assert response.headers["X-Data-Type"] == "text"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.text == "hello from curl ✓"


def test_duplicate_and_bad_credentials(server, alice):
    with client_for(server) as anonymous:
        assert_error(anonymous.post("/account/register", json={"username": "Alice", "password": PASSWORD}),
                     409, "username_taken")
        assert_error(anonymous.post("/account/login", json={"username": "alice", "password": "wrong password"}),
                     401, "invalid_credentials")
        assert_error(anonymous.post("/account/login", json={"username": "alice"}), 400, "invalid_input")
        assert_error(anonymous.get("/file/buffer"), 401, "unauthorized")


def test_logout_then_replaying_the_cookie_is_401(server):
    with login(server, "alice") as device:
        stolen = device.cookies[COOKIE_NAME]
        assert device.get("/file/buffer").status_code in (200, 204)
        assert device.post("/account/logout").status_code == 200
    with client_for(server) as attacker:
        response = attacker.get("/file/buffer", headers={"Cookie": f"{COOKIE_NAME}={stolen}"})
        assert_error(response, 401, "unauthorized")


def test_cross_origin_cookie_post_is_403_but_bearer_is_fine(server, alice):
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = alice.post("/file/buffer", content=b"csrf", headers={"X-Data-Type": "text", **headers})
        assert_error(response, 403, "cross_origin")
    token = alice.post("/account/tokens", json={"name": "e2e script", "password": PASSWORD}).json()["token"]
    with client_for(server) as script:
        response = script.post("/file/buffer", content=b"from a script",
                               headers={"X-Data-Type": "text", "Authorization": f"Bearer {token}",
                                        "Origin": "https://evil.example"})
        assert response.status_code == 201
        assert script.get("/file/buffer", headers={"Authorization": f"Bearer {token}"}).text == "from a script"


# --- the buffer ------------------------------------------------------------------------------------


def test_file_round_trip_raw_and_multipart(alice):
    data = os.urandom(300_000)
    response = alice.post("/file/buffer", content=data,
                          headers={"X-Data-Type": "file", "X-File-Name": quote("Fotó 1.jpg")})
    assert response.status_code == 201
    assert response.json()["filename"] == "Fotó 1.jpg"
    download = alice.get("/file/buffer")
    assert download.status_code == 200 and download.content == data
    assert download.headers["X-Data-Type"] == "file"
    assert download.headers["Content-Disposition"].endswith("filename*=UTF-8''Fot%C3%B3%201.jpg")
    assert download.headers["Content-Length"] == str(len(data))

    # The original clients' form: curl -F file=@notes.md
    response = alice.post("/file/buffer", headers={"X-Data-Type": "file"},
                          files={"file": ("notes.md", b"# notes\n", "text/markdown")})
    assert response.status_code == 201
    assert response.json()["filename"] == "notes.md"
    download = alice.get("/file/buffer")
    assert download.content == b"# notes\n"
    assert 'filename="notes.md"' in download.headers["Content-Disposition"]


def test_raw_file_named_by_content_disposition(alice):
    response = alice.post("/file/buffer", content=b"1,2\n",
                          headers={"X-Data-Type": "file",
                                   "Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC.csv"})
    assert response.status_code == 201 and response.json()["filename"] == "€.csv"


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"content": b"no type"}, 400, "invalid_data_type"),
        ({"content": b"bad type", "headers": {"X-Data-Type": "picture"}}, 400, "invalid_data_type"),
        ({"content": b"nameless", "headers": {"X-Data-Type": "file"}}, 400, "missing_filename"),
        ({"content": b"\xff\xfe", "headers": {"X-Data-Type": "text"}}, 400, "invalid_text"),
        ({"files": [("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))], "headers": {"X-Data-Type": "file"}},
         400, "bad_multipart"),
        ({"files": {"attachment": ("a.txt", b"a")}, "headers": {"X-Data-Type": "file"}}, 400, "bad_multipart"),
        ({"files": {"note": (None, "a field, no file")}, "headers": {"X-Data-Type": "file"}}, 400, "bad_multipart"),
    ],
    ids=["no-type", "unknown-type", "no-name", "bad-utf8", "two-files", "wrong-field", "no-file"],
)
def test_bad_inputs(alice, kwargs, status, code):
    before = alice.get("/file/buffer/items").json()["items"]
    assert_error(alice.post("/file/buffer", **kwargs), status, code)
    assert alice.get("/file/buffer/items").json()["items"] == before  # nothing was stored


def test_a_browser_gets_an_html_error_page(alice):
    response = alice.post("/file/buffer", content=b"x", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")


def test_the_file_cap_drops_the_oldest(server):
    with register(server, "capped") as bob:  # MAX_FILES=3 on this server
        ids = [bob.post("/file/buffer", content=f"file {n}".encode(),
                        headers={"X-Data-Type": "file", "X-File-Name": f"f{n}.txt"}).json()["id"] for n in range(4)]
        assert_error(bob.get(f"/file/buffer/items/{ids[0]}"), 404, "not_found")
        assert [bob.get(f"/file/buffer/items/{i}").text for i in ids[1:]] == ["file 1", "file 2", "file 3"]
        assert [item["filename"] for item in bob.get("/file/buffer/items").json()["items"]] == [
            "f3.txt", "f2.txt", "f1.txt"]


# --- share links -----------------------------------------------------------------------------------


def test_load_then_get_then_qr_and_the_log_never_shows_the_token(server, alice):
    response = alice.post("/file/load", files={"file": ("slides.pdf", b"%PDF fake slides", "application/pdf")})
    assert response.status_code == 201
    share = response.json()
    token = share["token"]
    assert share["url"] == f"{server.base_url}/file/get?token={token}"

    with client_for(server) as stranger:  # no account: the link is enough
        for url in (share["url"], f"{server.base_url}/file/get/{token}"):
            download = stranger.get(url)
            assert download.status_code == 200 and download.content == b"%PDF fake slides"
            assert download.headers["Content-Disposition"].startswith("attachment;")
            assert download.headers["X-Content-Type-Options"] == "nosniff"
            assert download.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
            assert download.headers["Cache-Control"] == "private, no-store"
            assert download.headers["Referrer-Policy"] == "no-referrer"
        qr = stranger.get(share["qr_url"])
        assert qr.status_code == 200 and qr.headers["Content-Type"] == "image/svg+xml"
        assert b"<svg" in qr.content
        assert_error(stranger.get(f"{server.base_url}/file/get?token=not-a-token"), 404, "not_found")
        page = stranger.get("/file/get?token=not-a-token", headers={"Accept": "text/html"})
        assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")

    log = server.wait_for_log('"GET /file/qr')
    assert '"GET /file/get' in log and '"GET /file/qr' in log  # the requests were logged …
    assert token not in log  # … without the token, in the query or in the path


def test_big_upload_sha256_matches_and_a_range_download_resumes(alice):
    size = 50 * MIB
    block = os.urandom(MIB)
    sent = hashlib.sha256()

    def body():
        for n in range(size // MIB):
            chunk = n.to_bytes(8, "big") + block[8:]  # every MiB differs
            sent.update(chunk)
            yield chunk

    started = time.monotonic()
    # A generator body goes out with Transfer-Encoding: chunked, as curl -T - does.
    response = alice.post("/file/buffer", content=body(),
                          headers={"X-Data-Type": "file", "X-File-Name": "big.bin"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["size"] == size

    received = hashlib.sha256()
    with alice.stream("GET", "/file/buffer") as download:
        assert download.status_code == 200
        assert download.headers["Content-Length"] == str(size)
        for chunk in download.iter_bytes():
            received.update(chunk)
    assert received.hexdigest() == sent.hexdigest()

    # A link to it, downloaded in two goes as a resumed transfer would.
    share = alice.post(f"/file/buffer/items/{created['id']}/share").json()
    half = size // 2 + 12345
    resumed = hashlib.sha256()
    with alice.stream("GET", share["url"], headers={"Range": f"bytes=0-{half - 1}"}) as first:
        assert first.status_code == 206
        assert first.headers["Content-Range"] == f"bytes 0-{half - 1}/{size}"
        for chunk in first.iter_bytes():
            resumed.update(chunk)
    with alice.stream("GET", share["url"], headers={"Range": f"bytes={half}-"}) as rest:
        assert rest.status_code == 206
        assert rest.headers["Content-Range"] == f"bytes {half}-{size - 1}/{size}"
        assert rest.headers["Content-Length"] == str(size - half)
        for chunk in rest.iter_bytes():
            resumed.update(chunk)
    assert resumed.hexdigest() == sent.hexdigest()
    assert time.monotonic() - started < 60


# --- limits ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_user(small_server):
    with register(small_server, "limited") as client:
        yield client


def test_chunked_upload_over_the_limit_is_413_and_leaves_nothing(small_server, small_user):
    def body():
        for _ in range(64):  # 4 MiB in 64 KiB chunks against a 1 MiB limit
            yield b"\x00" * (64 * 1024)

    try:
        # Connection: close: when the server refuses mid-body it drops the
        # connection, and on a loaded machine the client can see that only
        # after it has pooled the connection for reuse.
        response = small_user.post("/file/buffer", content=body(),
                                   headers={"X-Data-Type": "file", "X-File-Name": "huge.bin",
                                            "Connection": "close"})
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        # The server may answer and close before the client has sent it all;
        # what matters is below: nothing was stored.
        response = None
    if response is not None:
        assert_error(response, 413, "too_large")
    assert wait_until_empty(small_server) == ([], [])
    assert small_user.get("/file/buffer").status_code == 204
    # The next request works.
    assert small_user.post("/file/buffer", content=b"ok", headers={"X-Data-Type": "text"}).status_code == 201


def test_declared_oversize_and_multipart_oversize_are_413(small_server, small_user):
    response = small_user.post("/file/buffer", content=b"x" * (MIB + 1),
                               headers={"X-Data-Type": "file", "X-File-Name": "big.bin"})
    assert_error(response, 413, "too_large")
    response = small_user.post("/file/buffer", headers={"X-Data-Type": "file"},
                               files={"file": ("big.bin", b"y" * (MIB + 1))})
    assert_error(response, 413, "too_large")
    response = small_user.post("/file/load", files={"file": ("big.bin", b"z" * (MIB + 1))})
    assert_error(response, 413, "too_large")
    assert wait_until_empty(small_server) == ([], [])
    # Exactly the limit is accepted; a second one would pass the quota.
    response = small_user.post("/file/buffer", content=b"x" * MIB,
                               headers={"X-Data-Type": "file", "X-File-Name": "exact.bin"})
    assert response.status_code == 201
    over_quota = small_user.post("/file/buffer", content=b"x" * MIB,
                                 headers={"X-Data-Type": "file", "X-File-Name": "second.bin"})
    assert_error(over_quota, 413, "quota_exceeded")
    assert "quota" in over_quota.json()["message"]
    assert small_user.delete(f"/file/buffer/items/{response.json()['id']}").status_code == 200
    assert wait_until_empty(small_server) == ([], [])


# --- expiry and shutdown ---------------------------------------------------------------------------


def test_items_and_links_expire(small_server):
    with register(small_server, "brief") as client:
        client.post("/file/buffer", content=b"text", headers={"X-Data-Type": "text"})
        share = client.post("/file/load", files={"file": ("brief.txt", b"short-lived")}).json()
        assert client.get("/file/buffer").text == "text"
        assert client.get(share["url"]).content == b"short-lived"
        time.sleep(max(0.0, share["expires_at"] - time.time()) + 0.2)
        assert client.get("/file/buffer").status_code == 204
        assert_error(client.get(share["url"]), 404, "not_found")
        assert client.get("/file/buffer/items").json()["items"] == []
    # Reads refuse expired items at once; the sweeper then reclaims the disk.
    assert wait_until_empty(small_server) == ([], [])


def test_sigterm_stops_the_server_cleanly(live_server_factory):  # noqa: F811
    server = live_server_factory()
    with register(server, "last") as client:
        assert client.post("/file/buffer", content=b"bye", headers={"X-Data-Type": "text"}).status_code == 201
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5
    assert "Traceback" not in server.log_text()
    assert "cloudbuffer.sqlite3" in os.listdir(server.data_dir)


def test_healthz(server):
    response = httpx.get(server.base_url + "/healthz", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["db"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", response.json()["version"])
