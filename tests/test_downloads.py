"""server/downloads.py: byte ranges on every download route, through the
real server, the way the attacker sent them (RFC 9110 §14)."""
from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import quote

import httpx
import pytest

from tests.live_server import LiveServer, new_user

SIZE = 1000
DATA = os.urandom(SIZE)


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    """The four download routes of one 1000-byte file, and a client."""
    server = LiveServer(tmp_path_factory.mktemp("downloads"))
    server.start()
    token = new_user(server, "ranges")
    with httpx.Client(base_url=server.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        item = client.post("/file/buffer", content=DATA,
                           headers={"X-Data-Type": "file", "X-File-Name": "data.bin"}).json()
        share = client.post(f"/file/buffer/items/{item['id']}/share").json()
        yield client, [f"/file/get?token={share['token']}", f"/file/get/{share['token']}",
                       "/file/buffer", f"/file/buffer/items/{item['id']}"]
    server.stop()


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
