"""server/downloads.py: byte ranges on every download route, through the
real server, the way the attacker sent them (RFC 9110 §14)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from urllib.parse import quote

import httpx
import pytest

from tests.live_server import LiveServer, live_server_factory, new_user  # noqa: F401  (fixture)

SIZE = 1000
DATA = os.urandom(SIZE)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("downloads"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def routes(live):
    """The four download routes of one 1000-byte file, and a client."""
    token = new_user(live, "ranges")
    with httpx.Client(base_url=live.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        item = client.post("/file/buffer", content=DATA,
                           headers={"X-Data-Type": "file", "X-File-Name": "data.bin"}).json()
        share = client.post(f"/file/buffer/items/{item['id']}/share").json()
        yield client, [f"/file/get?token={share['token']}", f"/file/get/{share['token']}",
                       "/file/buffer", f"/file/buffer/items/{item['id']}"]


# (Range header, status, the bytes expected, Content-Range)
CASES = [
    ("bytes=-100", 206, DATA[-100:], "bytes 900-999/1000"),
    ("bytes=-1", 206, DATA[-1:], "bytes 999-999/1000"),
    ("bytes=-1000", 206, DATA, "bytes 0-999/1000"),
    ("bytes=-5000", 206, DATA, "bytes 0-999/1000"),  # longer than the file: all of it
    ("bytes=-99999999999999999999999999", 206, DATA, "bytes 0-999/1000"),
    ("bytes=0-", 206, DATA, "bytes 0-999/1000"),
    ("bytes=0-0", 206, DATA[:1], "bytes 0-0/1000"),
    ("bytes=10-19", 206, DATA[10:20], "bytes 10-19/1000"),
    ("BYTES = 10-19", 206, DATA[10:20], "bytes 10-19/1000"),
    ("bytes=990-5000", 206, DATA[990:], "bytes 990-999/1000"),
    ("bytes=0-99999999999999999999999999", 206, DATA, "bytes 0-999/1000"),
    ("bytes=999-", 206, DATA[999:], "bytes 999-999/1000"),
    ("bytes=1000-", 416, None, "bytes */1000"),
    ("bytes=1000-2000", 416, None, "bytes */1000"),
    ("bytes=99999999999999999999999999-", 416, None, "bytes */1000"),
    # Ignored (RFC 9110 §14.2): malformed, invalid, several ranges, other units.
    ("bytes=5-2", 200, DATA, None),
    ("bytes=-0", 200, DATA, None),
    ("bytes=0-1,5-6", 200, DATA, None),
    ("bytes=-1,-2", 200, DATA, None),
    ("bytes=--5", 200, DATA, None),
    ("bytes=-5-", 200, DATA, None),
    ("bytes=abc", 200, DATA, None),
    ("bytes=", 200, DATA, None),
    ("bytes", 200, DATA, None),
    ("bytes=٣-٥", 200, DATA, None),  # non-ASCII digits are no digits here
    ("items=0-5", 200, DATA, None),
    ("garbage", 200, DATA, None),
]


@pytest.mark.parametrize("header, status, body, content_range", CASES, ids=[case[0] for case in CASES])
def test_every_download_route_answers_every_range_form(routes, header, status, body, content_range):
    client, paths = routes
    for path in paths:
        response = client.get(path, headers={"Range": header.encode()})
        assert response.status_code == status, (path, response.text)
        assert response.headers.get("Content-Range") == content_range, path
        if body is not None:
            assert response.content == body, path
            assert response.headers["Content-Length"] == str(len(body)), path
            assert response.headers["Accept-Ranges"] == "bytes", path
        else:
            assert response.json()["error"] == "range_not_satisfiable", path


def test_head_if_range_and_preconditions(routes):
    client, paths = routes
    for path in paths:
        head = client.head(path, headers={"Range": "bytes=-100"})
        assert head.status_code == 206 and head.content == b"" and head.headers["Content-Length"] == "100"
        etag = client.get(path).headers["ETag"]
        # If-Range: the range only while the file is the one the client has.
        same = client.get(path, headers={"Range": "bytes=-100", "If-Range": etag})
        assert same.status_code == 206 and same.content == DATA[-100:], path
        other = client.get(path, headers={"Range": "bytes=-100", "If-Range": '"another-version"'})
        assert other.status_code == 200 and other.content == DATA, path
        # If-None-Match comes before the range: nothing to send.
        cached = client.get(path, headers={"Range": "bytes=-100", "If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b"", path
        # An unsatisfiable range of another version is the whole new one.
        beyond = client.get(path, headers={"Range": "bytes=5000-", "If-Range": '"another-version"'})
        assert beyond.status_code == 200 and beyond.content == DATA, path


def curl_save(url: str, directory, headers=()) -> list[str]:
    """`curl -OJ url` in an empty directory (real curl, no proxy, no
    ~/.curlrc); the names of the files it wrote there, dotfiles included."""
    assert shutil.which("curl"), "this test needs curl"
    args = ["curl", "-q", "-sS", "--fail", "--noproxy", "*", "-OJ", url]
    for header in headers:
        args[1:1] = ["-H", header]
    subprocess.run(args, cwd=directory, check=True, timeout=30, capture_output=True,
                   env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(directory)})
    return sorted(os.listdir(directory))


@pytest.mark.parametrize("name, saved", [
    ("．．／．．／．bashrc", "bashrc"),  # NFKD makes the fallback ../../.bashrc
    ("．ssh／authorized_keys", "authorized_keys"),
    ("日本語.txt", "download.txt"),
    ("..．profile", "download.profile"),  # stored as ．profile
])
def test_curl_OJ_writes_a_shared_file_inside_the_directory_and_never_a_dotfile(routes, tmp_path, name, saved):
    client, _ = routes
    base = str(client.base_url).rstrip("/")
    item = client.post("/file/buffer", content=b"echo pwned\n",
                       headers={"X-Data-Type": "file", "X-File-Name": quote(name)}).json()
    share = client.post(f"/file/buffer/items/{item['id']}/share").json()
    for n, (url, headers) in enumerate([(share["url"], ()), (f"{base}/file/get/{share['token']}", ()),
                                        (f"{base}/file/buffer", (client.headers["Authorization"],))]):
        directory = tmp_path / f"d{n}"
        (directory / "inner").mkdir(parents=True)
        work = directory / "inner"
        assert curl_save(url, work, [f"Authorization: {h}" for h in headers]) == [saved], url
        assert (work / saved).read_bytes() == b"echo pwned\n"
        assert os.listdir(directory) == ["inner"] and not (tmp_path / ".bashrc").exists()


# The input: a part whose Content-Type holds a vertical tab, and the
# same with ESC and DEL, then other types that are not RFC 9110 media types.
BAD_TYPES = [b"a/b\x0bc", b"a/b\x1bc", b"a/b\x7fc", b"text/html\x1b[31m", b"image/png; x=\"open"]


def multipart_with_type(field: str, filename: str, content_type: bytes) -> tuple[bytes, str]:
    boundary = "cloudbuffer-mime-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: ").encode() + content_type + f"\r\n\r\nbody\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def assert_served_as_octet_stream(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    assert response.content == b"body"
    assert response.headers["Content-Type"] == "application/octet-stream", path


def stored_types(server) -> set[str]:
    with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as db:
        return {mime for (mime,) in db.execute("SELECT mime FROM files")}


def test_a_bad_type_is_stored_as_octet_stream_on_every_upload_path(live, routes):
    client, _ = routes
    for bad in BAD_TYPES:
        stored = []
        body, content_type = multipart_with_type("file", "part.png", bad)
        response = client.post("/file/buffer", content=body, headers={"X-Data-Type": "file",
                                                                       "Content-Type": content_type})
        assert response.status_code == 201, response.text
        stored.append(response.json()["id"])
        response = client.post("/file/load", content=body, headers={"Content-Type": content_type,
                                                                     "Accept": "application/json"})
        assert response.status_code == 201, response.text
        assert_served_as_octet_stream(client, f"/file/get/{response.json()['token']}")
        body, content_type = multipart_with_type("files", "shared.png", bad)
        response = client.post("/share-target", content=body, headers={"Content-Type": content_type,
                                                                        "Accept": "application/json"})
        assert response.status_code == 201, response.text
        stored += [item["id"] for item in response.json()["items"]]
        for item_id in stored:
            assert_served_as_octet_stream(client, f"/file/buffer/items/{item_id}")
        items = {item["id"]: item for item in client.get("/file/buffer/items").json()["items"]}
        assert all(items[item_id]["mime"] == "application/octet-stream" for item_id in stored)
    # A raw body's Content-Type: h11 refuses control characters in a header,
    # so these are the broken types that get through to the app.
    for bad in ("image/png x", "image/png; charset=\"open", "image/png;=x", "image/", "imag(e)/png"):
        item = client.post("/file/buffer", content=b"body", headers={
            "X-Data-Type": "file", "X-File-Name": "raw.png", "Content-Type": bad}).json()
        assert item["mime"] == "application/octet-stream", bad
        assert_served_as_octet_stream(client, f"/file/buffer/items/{item['id']}")
    item = client.post("/file/buffer", content=b"body", headers={
        "X-Data-Type": "file", "X-File-Name": "raw.png", "Content-Type": "Image/PNG; q=\"a b\""}).json()
    assert item["mime"] == "image/png"  # a valid one is kept
    # What is stored, not only what is served (served_mime would hide it).
    assert stored_types(live) <= {"application/octet-stream", "image/png"}, stored_types(live)


def test_a_bad_type_already_in_the_database_is_served_as_octet_stream(live_server_factory):  # noqa: F811
    server = live_server_factory()
    api_token = new_user(server, "olddb")
    with httpx.Client(base_url=server.base_url, timeout=30, headers={"Authorization": f"Bearer {api_token}"}) as http:
        ids = [http.post("/file/buffer", content=b"body", headers={
            "X-Data-Type": "file", "X-File-Name": f"{n}.png"}).json()["id"] for n in range(len(BAD_TYPES))]
        share = http.post(f"/file/buffer/items/{ids[-1]}/share").json()
        # A database written before types were checked.
        server.stop()
        with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as db:
            for item_id, bad in zip(ids, BAD_TYPES):
                db.execute("UPDATE files SET mime = ? WHERE id = (SELECT file_id FROM items WHERE id = ?)",
                           (bad.decode("latin-1"), item_id))
        server.start()
        for item_id in ids:
            assert_served_as_octet_stream(http, f"/file/buffer/items/{item_id}")
        assert_served_as_octet_stream(http, "/file/buffer")
        assert_served_as_octet_stream(http, f"/file/get/{share['token']}")
        assert {item["mime"] for item in http.get("/file/buffer/items").json()["items"]} == {
            "application/octet-stream"}
    assert "Illegal header value" not in server.log_text() and "Traceback" not in server.log_text()
