"""The free-space floor: below CLOUDBUFFER_MIN_FREE_BYTES uploads and new
texts get 507 with a clear message, nothing half-written stays, and the
database and the buffer are untouched."""
from __future__ import annotations

import os
import sqlite3

import httpx
import pytest

from server.services import services
from server.errors import APIError
from server.storage import Storage
from tests.conftest import PASSWORD, register
from tests.helpers import multipart, stored_files, temp_files
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

MIB = 1024 * 1024


def assert_507(response_status: int, body: dict) -> None:
    assert response_status == 507
    assert body["error"] == "insufficient_storage"
    assert "disk space" in body["message"] and "Nothing was stored" in body["message"]


@pytest.fixture
def settings(tmp_path):
    return {"DATA_DIR": str(tmp_path / "data"), "MIN_FREE_BYTES": 100 * MIB}


async def test_an_upload_that_crosses_the_floor_midway_is_refused_and_removed(tmp_path, monkeypatch):
    """The disk fills while a file streams in (another process writing):
    the upload stops at the floor and its temp file goes."""
    storage = Storage(tmp_path, min_free_bytes=100 * MIB)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "files").mkdir()
    looks = []
    monkeypatch.setattr(Storage, "free_bytes", lambda self: 130 * MIB - 2 * MIB * len(looks.append(1) or looks))
    upload = storage.new_upload(1024 * MIB, lambda: AssertionError("not too large"))
    written = 0
    with pytest.raises(APIError) as refused:
        async with upload:
            for _ in range(30):
                await upload.write(b"x" * (64 * 1024) * 16)
                written += MIB
    assert refused.value.status == 507 and refused.value.code == "insufficient_storage"
    assert 5 * MIB < written < 30 * MIB  # midway, not up front
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_uploads_and_texts_below_the_floor_get_507(app, client, monkeypatch):
    await register(client, "alice")
    await client.post("/file/buffer", data=b"before", headers={"X-Data-Type": "text"})
    disk = {"free": 110 * MIB}
    monkeypatch.setattr(Storage, "free_bytes", lambda self: disk["free"])
    data_dir = services(app).settings.data_dir
    assert temp_files(data_dir) == [] and stored_files(data_dir) == []
    # Declared bigger than the room left: refused before a byte is written.
    body, content_type = multipart([("file", "big.bin", os.urandom(20 * MIB))])
    response = await client.post("/file/load", data=body, headers={"Content-Type": content_type,
                                                                  "Accept": "application/json"})
    assert_507(response.status_code, await response.get_json())
    # Small uploads that fit above the floor still work.
    response = await client.post("/file/buffer", data=b"small", headers={"X-Data-Type": "file",
                                                                        "X-File-Name": "small.txt"})
    assert response.status_code == 201
    disk["free"] = 99 * MIB  # below the floor: even a text is refused
    response = await client.post("/file/buffer", data=b"after", headers={"X-Data-Type": "text"})
    assert_507(response.status_code, await response.get_json())
    assert await (await client.get("/file/buffer")).get_data() == b"small"


def test_a_full_disk_on_the_real_server(live_server_factory):  # noqa: F811
    server = live_server_factory()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post("/account/register", json={"username": "alice", "password": PASSWORD}).status_code == 201
        assert client.post("/file/buffer", content=b"kept safe", headers={"X-Data-Type": "text"}).status_code == 201
    # Restart with a floor no disk can satisfy: every upload meets it.
    server.extra_env["CLOUDBUFFER_MIN_FREE_BYTES"] = str(2**62)
    server.restart()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post("/account/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
        for kwargs in ({"content": b"text", "headers": {"X-Data-Type": "text"}},
                       {"content": os.urandom(MIB), "headers": {"X-Data-Type": "file", "X-File-Name": "a.bin"}},
                       {"files": {"file": ("b.bin", b"bytes")}, "headers": {"X-Data-Type": "file"}}):
            response = client.post("/file/buffer", **kwargs)
            assert_507(response.status_code, response.json())
        response = client.post("/file/load", files={"file": ("c.bin", b"bytes")}, headers={"Accept": "application/json"})
        assert_507(response.status_code, response.json())
        page = client.post("/file/load", files={"file": ("c.bin", b"bytes")}, headers={"Accept": "text/html"})
        assert page.status_code == 507 and "disk space" in page.text
        # Reading goes on; the buffer is what it was.
        assert client.get("/file/buffer").text == "kept safe"
    assert temp_files(server.data_dir) == [] and stored_files(server.data_dir) == []
    conn = sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone() == (1,)
    finally:
        conn.close()
