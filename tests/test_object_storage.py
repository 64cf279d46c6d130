"""Files in S3-compatible object storage (server/object_storage.py), against a
real S3 API (SeaweedFS, tests/s3_server.py): uploads stream as multipart
uploads with bounded memory and are aborted on any failure, the row comes
only after the object, downloads stream with Range, the bucket is made at
start-up, the sweeper reconciles both ways, and a store killed mid-upload
leaves no row and, after a sweep, nothing else."""
from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

from server.object_storage import PART_SIZE, S3Storage, parse_storage_url
from server.errors import APIError
from server.models import files as files_model
from server.services import services
from server.sweeper import ORPHAN_GRACE_SECONDS, sweep_once
from tests.conftest import register
from tests.live_server import live_server_factory, new_user, wait_for  # noqa: F401
from tests.s3_server import s3_server, s3_service  # noqa: F401

MIB = 1024 * 1024
FILE = {"X-Data-Type": "file"}


@pytest.fixture
def bucket_url(s3_service):  # noqa: F811
    return s3_service.bucket_url()


@pytest.fixture
def settings(settings, s3_service, bucket_url, monkeypatch):  # noqa: F811
    for name, value in s3_service.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return {**settings, "STORAGE_URL": bucket_url, "S3_ENDPOINT": s3_service.endpoint}


def objects(s3, bucket_url: str) -> dict[str, int]:
    bucket, prefix = parse_storage_url(bucket_url)
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {entry["Key"][len(prefix):]: entry["Size"] for entry in listed.get("Contents", [])}


def multipart_uploads(s3, bucket_url: str) -> list:
    bucket, prefix = parse_storage_url(bucket_url)
    return s3.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def test_storage_urls_name_a_bucket_and_a_prefix():
    assert parse_storage_url("s3://files") == ("files", "")
    assert parse_storage_url("s3://files/cloudbuffer/") == ("files", "cloudbuffer/")
    assert parse_storage_url("s3://files/a/b") == ("files", "a/b/")


async def test_a_missing_bucket_is_made_at_start_up(tmp_path, s3_service, monkeypatch):  # noqa: F811
    from server import create_app

    for name, value in s3_service.env().items():
        monkeypatch.setenv(name, value)
    url = s3_service.bucket_url(new_bucket=True)
    bucket, _ = parse_storage_url(url)
    with pytest.raises(Exception):
        s3_service.client().head_bucket(Bucket=bucket)
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "STORAGE_URL": url, "S3_ENDPOINT": s3_service.endpoint})
    async with app.test_app():
        s3_service.client().head_bucket(Bucket=bucket)  # made by the app's start-up
        assert services(app).storage.local is False


async def test_a_file_goes_to_the_bucket_and_comes_back_whole_and_in_ranges(app, client, s3_service, bucket_url):  # noqa: F811
    await register(client)
    data = os.urandom(3 * MIB + 123)
    response = await client.post("/file/buffer", data=data, headers={**FILE, "X-File-Name": "photo.jpg"})
    assert response.status_code == 201
    stored = objects(s3_service, bucket_url)
    assert list(stored.values()) == [len(data)]
    assert not os.listdir(services(app).settings.data_dir / "files")  # nothing on the local disk
    response = await client.get("/file/buffer")
    assert await response.get_data() == data
    assert response.headers["Accept-Ranges"] == "bytes" and response.headers["ETag"]
    response = await client.get("/file/buffer", headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206 and response.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert await response.get_data() == data[1000:2000]
    response = await client.get("/file/buffer", headers={"Range": "bytes=-10"})
    assert await response.get_data() == data[-10:]
    etag = (await client.get("/file/buffer")).headers["ETag"]
    assert (await client.get("/file/buffer", headers={"If-None-Match": etag})).status_code == 304


async def test_a_big_file_is_a_multipart_upload_holding_at_most_a_part_in_memory(app, s3_service, bucket_url):  # noqa: F811
    storage = services(app).storage
    sizes = []
    upload = storage.new_upload(100 * MIB, lambda: APIError(413, "too_large", "too large"))
    async with upload:
        for _ in range(20):
            await upload.write(b"\x07" * MIB)
            sizes.append(len(upload._buffer))
        assert upload._upload_id is not None and len(upload._parts) == 2  # two 8 MiB parts sent so far
        name = await upload.commit()
    assert max(sizes) < PART_SIZE
    assert objects(s3_service, bucket_url) == {name: 20 * MIB}
    assert multipart_uploads(s3_service, bucket_url) == []


async def test_an_upload_refused_midway_is_aborted_and_leaves_nothing(app, client, s3_service, bucket_url):  # noqa: F811
    await register(client)
    storage = services(app).storage
    upload = storage.new_upload(10 * MIB, lambda: APIError(413, "too_large", "too large"))
    with pytest.raises(APIError):
        async with upload:
            for _ in range(12):
                await upload.write(b"\x01" * MIB)
    assert multipart_uploads(s3_service, bucket_url) == []
    assert objects(s3_service, bucket_url) == {}


@pytest.fixture
def small_quota(settings):
    settings["QUOTA_BYTES"] = 12 * MIB
    return settings


async def test_over_quota_through_the_app_is_413_and_nothing_is_left(small_quota, app, client, s3_service,  # noqa: F811
                                                                   bucket_url):
    await register(client)
    ok = await client.post("/file/buffer", data=b"a" * (10 * MIB), headers={**FILE, "X-File-Name": "a.bin"})
    assert ok.status_code == 201
    refused = await client.post("/file/buffer", data=b"b" * (9 * MIB), headers={**FILE, "X-File-Name": "b.bin"})
    assert refused.status_code == 413
    assert list(objects(s3_service, bucket_url).values()) == [10 * MIB]
    assert multipart_uploads(s3_service, bucket_url) == []


async def test_the_share_page_previews_text_from_the_bucket(app, client):
    await register(client)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello from the bucket\r\n--b--\r\n")
    response = await client.post("/file/load", data=body, headers={"Content-Type": "multipart/form-data; boundary=b",
                                                                   "Accept": "application/json"})
    token = (await response.get_json())["token"]
    page = await client.get(f"/file/get?token={token}", headers={"Accept": "text/html"})
    assert "hello from the bucket" in await page.get_data(as_text=True)


async def test_the_sweeper_reconciles_the_bucket_both_ways(app, client, s3_service, bucket_url):  # noqa: F811
    await register(client)
    for name in ("kept.bin", "vanishing.bin"):
        await client.post("/file/buffer", data=name.encode(), headers={**FILE, "X-File-Name": name})
    registry = services(app)
    bucket, prefix = parse_storage_url(bucket_url)
    s3 = s3_service.client()
    s3.put_object(Bucket=bucket, Key=prefix + "0" * 32, Body=b"an orphan: no row")
    files = {f.filename: f for f in await registry.db.read(
        lambda conn: [files_model.StoredFile(**dict(row)) for row in conn.all(
            "SELECT id, user_id, stored_name, filename, mime, size, created_at, expires_at FROM files")])}
    s3.delete_object(Bucket=bucket, Key=prefix + files["vanishing.bin"].stored_name)  # a row without its object

    later = time.time() + ORPHAN_GRACE_SECONDS + 60
    first = await sweep_once(registry.db, registry.storage, 60, now=later)
    # An object is judged only once a whole sweep has seen it: not yet.
    assert first["orphans"] == 0 and first["missing_files"] == 1
    second = await sweep_once(registry.db, registry.storage, 60, now=later + 60)
    assert second["orphans"] == 1
    assert set(objects(s3_service, bucket_url)) == {files["kept.bin"].stored_name}
    assert (await client.get("/file/buffer")).status_code == 200  # kept.bin is the buffer now

    # Expiry deletes the objects too, in batches.
    expired = await sweep_once(registry.db, registry.storage, 60, now=time.time() + 10 * 24 * 3600)
    assert expired["files"] == 1 and objects(s3_service, bucket_url) == {}


def test_s3_killed_mid_upload_leaves_no_row_and_after_a_sweep_nothing(live_server_factory, s3_server):  # noqa: F811
    bucket_url = s3_server.bucket_url()
    server = live_server_factory(env={**s3_server.env(), "CLOUDBUFFER_STORAGE_URL": bucket_url,
                                      "CLOUDBUFFER_SWEEP_SECONDS": "2"})
    token = new_user(server, "alice")
    headers = {"Authorization": f"Bearer {token}", **FILE, "X-File-Name": "big.bin"}
    parts_sent = threading.Event()
    release = threading.Event()

    def body():
        for n in range(30):
            if n == 20:  # two parts are in the store, a multipart upload is open
                parts_sent.set()
                release.wait(60)
            yield b"\x05" * MIB

    outcome: list = []

    def upload():
        try:
            outcome.append(httpx.post(server.base_url + "/file/buffer", content=body(), headers=headers,
                                      timeout=120))
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=upload)
    thread.start()
    assert parts_sent.wait(60)
    assert wait_for(lambda: multipart_uploads(s3_server, bucket_url), timeout=30)
    s3_server.kill()
    release.set()
    thread.join(120)
    response = outcome[0]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 503 and response.json()["error"] == "storage_unavailable"
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.get("/file/buffer/items").json()["items"] == []  # no row
        s3_server.start()
        # The abort that failed while the store was down is retried by the sweeper.
        assert wait_for(lambda: multipart_uploads(s3_server, bucket_url) == [], timeout=60)
        assert objects(s3_server, bucket_url) == {}
        after = api.post("/file/buffer", content=b"back", headers={**FILE, "X-File-Name": "b.bin"})
        assert after.status_code == 201
    assert "Traceback" not in server.log_text()


def test_the_storage_is_checked_before_serving(tmp_path, s3_service):  # noqa: F811
    import subprocess

    from tests.live_server import cloudbuffer_executable

    env = {key: value for key, value in os.environ.items() if not key.startswith(("CLOUDBUFFER_", "AWS_"))}
    env.update(s3_service.env(), CLOUDBUFFER_DATA_DIR=str(tmp_path / "data"),
               CLOUDBUFFER_STORAGE_URL=s3_service.bucket_url(), AWS_SECRET_ACCESS_KEY="not-the-key")
    refused = subprocess.run([cloudbuffer_executable(), "serve", "--bind", "127.0.0.1:0"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: cannot use the file storage (CLOUDBUFFER_STORAGE_URL)")
    assert "not-the-key" not in refused.stderr and "Traceback" not in refused.stderr


def test_s3_storage_needs_no_files_dir(tmp_path):
    storage = S3Storage("s3://bucket/p", None, tmp_path)
    assert storage.key("abc") == "p/abc" and not storage.local


async def test_a_resumable_upload_finishes_into_the_bucket(app, client, s3_service, bucket_url):  # noqa: F811
    import base64

    await register(client)
    tus = {"Tus-Resumable": "1.0.0", "Accept": "application/json"}
    data = os.urandom(PART_SIZE + 5 * MIB)  # more than one part: a multipart upload from the partial
    meta = "filename " + base64.b64encode(b"resumed.bin").decode()
    created = await client.post("/file/uploads", data=b"", headers={**tus, "Upload-Length": str(len(data)),
                                                                    "Upload-Metadata": meta})
    assert created.status_code == 201
    url = created.headers["Location"]
    half = len(data) // 2
    for offset, piece in ((0, data[:half]), (half, data[half:])):
        response = await client.patch(url, data=piece, headers={**tus, "Content-Type": "application/offset+octet-stream",
                                                                "Upload-Offset": str(offset)})
        assert response.status_code == 204, await response.get_data(as_text=True)
    assert list(objects(s3_service, bucket_url).values()) == [len(data)]
    assert await (await client.get("/file/buffer")).get_data() == data
