"""Unfinished resumable uploads in the bucket (server/s3_partials.py), against
a real S3 API (SeaweedFS, tests/s3_server.py): parts of 8 MiB plus an
"incomplete part" tail, the offset a new store reads back, the checksum
extension, termination, expiry and the sweeper's orphan reconcile."""
from __future__ import annotations

import base64
import hashlib
import time

import pytest

from server import resumable
from server.models import uploads as uploads_model
from server.object_storage import PART_SIZE, TUS_SUFFIX, parse_storage_url
from server.s3_partials import S3PartialStore
from server.services import services
from tests.blueprints.test_uploads import TUS, create, offset_of, patch
from tests.live_server import live_server_factory  # noqa: F401
from tests.s3_server import s3_server, s3_service  # noqa: F401
from tests.test_object_storage import bucket_url, multipart_uploads, objects, settings  # noqa: F401

MIB = 1024 * 1024


def tails(s3, url: str) -> dict[str, int]:
    return {name: size for name, size in objects(s3, url).items() if name.startswith("partials/")}


def public_id_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def row_of(app, url: str):
    registry = services(app)
    return await registry.db.read(lambda conn: conn.one(
        "SELECT upload_offset, multipart_id, stored_name FROM uploads WHERE public_id = ?", (public_id_of(url),)))


async def test_parts_and_a_tail_then_a_new_store_resumes_and_finishes(app, alice, s3_service, bucket_url):  # noqa: F811
    data = bytes(range(256)) * (4 * 20 * 1024 + 3)  # 20 MiB and 768 bytes
    url = await create(alice, len(data))
    row = await row_of(app, url)
    assert row["stored_name"].endswith(TUS_SUFFIX) and row["multipart_id"]
    first = PART_SIZE + 12345
    assert (await patch(alice, url, 0, data[:first])).status_code == 204
    assert await offset_of(alice, url) == first
    assert tails(s3_service, bucket_url) == {f"partials/{public_id_of(url)}.{first}.tail": 12345}
    bucket, prefix = parse_storage_url(bucket_url)
    parts = s3_service.client().list_parts(Bucket=bucket, Key=prefix + row["stored_name"],
                                           UploadId=row["multipart_id"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, PART_SIZE)]

    # A "restart": a new store object knows the upload only from the row and the bucket.
    registry = services(app)
    store = S3PartialStore(registry.storage, registry.db)
    partial = await store.open(public_id_of(url))
    try:
        user_id = await registry.db.read(lambda conn: conn.value("SELECT user_id FROM uploads"))
        await partial.begin(await registry.db.read(uploads_model.select_upload, user_id, public_id_of(url),
                                                   time.time()))
        assert partial._sent == PART_SIZE and bytes(partial._buffer) == data[PART_SIZE:first]
        # Its lease keeps every other PATCH out meanwhile.
        assert (await patch(alice, url, first, data[first:])).status_code == 409
    finally:
        await partial.close()

    second = 2 * PART_SIZE + 7
    assert (await patch(alice, url, first, data[first:second])).status_code == 204
    assert tails(s3_service, bucket_url) == {f"partials/{public_id_of(url)}.{second}.tail": 7}  # the old one went
    response = await patch(alice, url, second, data[second:])
    assert response.status_code == 204
    assert await offset_of(alice, url) == len(data)
    download = await alice.get("/file/buffer")
    assert hashlib.sha256(await download.get_data()).digest() == hashlib.sha256(data).digest()
    assert tails(s3_service, bucket_url) == {}
    assert objects(s3_service, bucket_url)[row["stored_name"]] == len(data)
    assert [u for u in multipart_uploads(s3_service, bucket_url) if u["Key"].endswith(TUS_SUFFIX)] == []


async def test_a_checksum_that_does_not_match_keeps_nothing(app, alice, s3_service, bucket_url):  # noqa: F811
    data = b"q" * (PART_SIZE + 100)
    url = await create(alice, len(data) + 10)
    wrong = "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    # Other bytes of the same length: the refused PATCH's part 1 must not be the one that counts.
    assert (await patch(alice, url, 0, b"z" * len(data), **{"Upload-Checksum": wrong})).status_code == 460
    assert await offset_of(alice, url) == 0 and tails(s3_service, bucket_url) == {}
    right = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (await patch(alice, url, 0, data, **{"Upload-Checksum": right})).status_code == 204
    assert await offset_of(alice, url) == len(data)
    assert (await patch(alice, url, len(data), b"0123456789")).status_code == 204
    download = await alice.get("/file/buffer")
    assert await download.get_data() == data + b"0123456789"


async def test_termination_aborts_the_multipart_upload_and_deletes_the_tail(app, alice, s3_service, bucket_url):  # noqa: F811
    url = await create(alice, 1000)
    row = await row_of(app, url)
    assert (await patch(alice, url, 0, b"x" * 300)).status_code == 204
    assert len(tails(s3_service, bucket_url)) == 1
    assert row["multipart_id"] in {u["UploadId"] for u in multipart_uploads(s3_service, bucket_url)}
    assert (await alice.delete(url, headers=TUS)).status_code == 204
    assert tails(s3_service, bucket_url) == {}
    assert row["multipart_id"] not in {u["UploadId"] for u in multipart_uploads(s3_service, bucket_url)}


async def test_expiry_and_the_orphan_reconcile_clear_the_bucket(app, alice, s3_service, bucket_url):  # noqa: F811
    registry = services(app)
    store = S3PartialStore(registry.storage, registry.db)
    url = await create(alice, 1000)
    row = await row_of(app, url)
    assert (await patch(alice, url, 0, b"x" * 300)).status_code == 204
    # Leftovers no row owns: a multipart upload and a tail (a host died between them and its row).
    orphan_id, orphan_name = await store.create("cd" * 16)
    bucket, prefix = parse_storage_url(bucket_url)
    s3_service.client().put_object(Bucket=bucket, Key=prefix + store.tail_name("cd" * 16, 5), Body=b"12345")
    # A stale tail of a live upload (its PATCH moved on but could not delete it).
    s3_service.client().put_object(Bucket=bucket, Key=prefix + store.tail_name(public_id_of(url), 100), Body=b"1")

    result = await resumable.sweep(registry.db, store, time.time())
    assert result == {"uploads": 0, "partial_files": 0}  # too young to judge
    later = time.time() + resumable.LEFTOVER_GRACE_SECONDS + 1
    result = await resumable.sweep(registry.db, store, later)
    assert result == {"uploads": 0, "partial_files": 3}
    live = {u["UploadId"] for u in multipart_uploads(s3_service, bucket_url)}
    assert orphan_id not in live and row["multipart_id"] in live
    assert tails(s3_service, bucket_url) == {f"partials/{public_id_of(url)}.300.tail": 300}
    assert await offset_of(alice, url) == 300

    expired = time.time() + registry.settings.upload_expire_seconds + 1
    result = await resumable.sweep(registry.db, store, expired)
    assert result["uploads"] == 1
    assert row["multipart_id"] not in {u["UploadId"] for u in multipart_uploads(s3_service, bucket_url)}
    assert tails(s3_service, bucket_url) == {}


def test_s3_killed_mid_patch_keeps_the_last_durable_offset_and_a_resume_completes(live_server_factory,
                                                                                  s3_server):  # noqa: F811
    import threading

    import httpx

    from tests.live_server import new_user, wait_for

    bucket_url = s3_server.bucket_url()
    server = live_server_factory(env={**s3_server.env(), "CLOUDBUFFER_STORAGE_URL": bucket_url})
    token = new_user(server, "alice")
    data = bytes(range(251)) * (30 * MIB // 251)
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    created = api.post("/file/uploads", headers={**TUS, "Upload-Length": str(len(data)),
                                                 "Upload-Metadata": "filename YS5iaW4="})
    assert created.status_code == 201
    url = "/file/uploads/" + created.headers["Location"].rsplit("/", 1)[1]
    stream = {**TUS, "Content-Type": "application/offset+octet-stream"}
    release = threading.Event()

    def body():
        for n in range(0, len(data), MIB):
            if n == 20 * MIB:  # two parts are stored and recorded, a third is filling
                release.wait(60)
            yield data[n:n + MIB]

    outcome: list = []

    def send():
        try:
            outcome.append(api.patch(url, content=body(), headers={**stream, "Upload-Offset": "0"}))
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert wait_for(lambda: int(api.head(url, headers=TUS).headers["Upload-Offset"]) == 2 * PART_SIZE,
                        timeout=60)
        s3_server.kill()
    finally:
        release.set()
        thread.join(120)
    response = outcome[0]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 503 and response.json()["error"] == "storage_unavailable"
    assert int(api.head(url, headers=TUS).headers["Upload-Offset"]) == 2 * PART_SIZE  # the last durable one
    s3_server.start()
    resumed = api.patch(url, content=data[2 * PART_SIZE:], headers={**stream, "Upload-Offset": str(2 * PART_SIZE)})
    assert resumed.status_code == 204, resumed.text
    downloaded = api.get("/file/buffer")
    assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(data).hexdigest()
    api.close()
    assert "Traceback" not in server.log_text()
