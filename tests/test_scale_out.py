"""Two hosts: two `cloudbuffer serve` processes of two workers each, with data
dirs of their own, sharing only Redis, PostgreSQL and S3 (all real servers,
started by the tests on free ports) and the settings docs/operations.md says
they must share. What one host does, the other serves; the quota, the file
cap and seq hold across both; Redis going away stops no HTTP."""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed

from tests.live_server import LiveServer, new_user
from tests.redis_server import RedisServer
from tests.s3_server import s3_service  # noqa: F401  (fixture)
from tests.test_live_e2e import CONVERGE_SECONDS, Device, converge, next_message
from tests.test_object_storage import objects

MIB = 1024 * 1024
QUOTA = 8 * MIB
MAX_FILES = 3


class Hosts:
    def __init__(self, a: LiveServer, b: LiveServer, redis: RedisServer, database_url: str, bucket_url: str,
                 s3) -> None:
        self.a, self.b, self.redis, self.s3 = a, b, redis, s3
        self.database_url = database_url
        self.bucket_url = bucket_url

    def rows(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, pg_cluster, s3_service):  # noqa: F811
    redis = RedisServer()
    redis.start()
    database_url = pg_cluster.create_database()
    bucket_url = s3_service.bucket_url()
    shared = {**s3_service.env(), "CLOUDBUFFER_DATABASE_URL": database_url, "CLOUDBUFFER_STORAGE_URL": bucket_url,
              "CLOUDBUFFER_SECRET_KEY": secrets.token_urlsafe(48), "CLOUDBUFFER_QUOTA_BYTES": str(QUOTA),
              "CLOUDBUFFER_MAX_FILES": str(MAX_FILES), "CLOUDBUFFER_RATE_LIMITS": "false"}
    servers = [LiveServer(tmp_path_factory.mktemp(f"host-{name}"), workers=2, redis_url=redis.url, env=shared)
               for name in ("a", "b")]
    try:
        for server in servers:
            server.start()
        yield Hosts(*servers, redis, database_url, bucket_url, s3_service)
    finally:
        for server in servers:
            server.stop()
        redis.cleanup()


def _api(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_a_file_posted_to_a_downloads_from_b(hosts):
    token = new_user(hosts.a, "files-" + secrets.token_hex(3))
    data = os.urandom(3 * MIB + 7)
    with _api(hosts.a, token) as a, _api(hosts.b, token) as b:
        assert a.post("/file/buffer", content=data, headers={"X-Data-Type": "file", "X-File-Name": "x.bin"}
                      ).status_code == 201
        response = b.get("/file/buffer")
        assert response.status_code == 200 and response.content == data
        assert b.get("/file/buffer", headers={"Range": "bytes=10-19"}).content == data[10:20]
        shared = a.post("/file/load", files={"file": ("r.txt", b"a report")}, headers={"Accept": "application/json"})
        link = shared.json()["token"]
    # Anyone holding the link, on either host; neither host's disk holds the files.
    assert httpx.get(f"{hosts.b.base_url}/file/get?token={link}&download=1").content == b"a report"
    for server in (hosts.a, hosts.b):
        assert os.listdir(server.data_dir / "files") == []


async def test_a_device_on_b_gets_as_push_and_logout_on_a_closes_it(hosts):
    username = "live-" + secrets.token_hex(3)
    laptop = await Device(hosts.a, username, register=True).login()
    try:
        # The same session (its cookie) used on host B, as behind a load balancer.
        ws = await Device(hosts.b, username).socket(headers=laptop.cookie_header, origin=hosts.b.base_url)
        await next_message(ws, "hello")
        await next_message(ws, "buffer")
        posted = await laptop.post_text("posted on host A")
        latest = await converge(ws, posted["seq"])
        assert latest["text"] == "posted on host A"
        assert (await laptop.http.post("/account/logout")).status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_drain(ws), CONVERGE_SECONDS)
        assert closed.value.rcvd.code == 4401
    finally:
        await laptop.close()


async def _drain(ws) -> None:
    while True:
        await ws.recv()


def test_seq_strictly_increases_in_commit_order_across_hosts(hosts):
    token = new_user(hosts.a, "seq-" + secrets.token_hex(3))
    posts = 40

    def post(n: int) -> int:
        server = hosts.a if n % 2 else hosts.b
        with _api(server, token) as client:
            response = client.post("/file/buffer", content=f"post {n}".encode(), headers={"X-Data-Type": "text"})
            assert response.status_code == 201, response.text
            return response.json()["seq"]

    with ThreadPoolExecutor(8) as pool:
        seqs = list(pool.map(post, range(posts)))
    assert sorted(seqs) == list(range(1, posts + 1))  # none lost, none twice
    user_id = hosts.rows("SELECT user_id FROM api_tokens ORDER BY id DESC LIMIT 1")[0][0]
    # Commit order is seq order: the item ids (taken in insert order) rise with seq.
    rows = hosts.rows("SELECT seq, id FROM items WHERE user_id = %s ORDER BY seq", (user_id,))
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)
    assert [item_id for _, item_id in rows] == sorted(item_id for _, item_id in rows)
    with _api(hosts.b, token) as client:
        items = client.get("/file/buffer/items").json()["items"]
    assert items[0]["seq"] == posts


def test_the_quota_holds_exactly_under_uploads_split_across_hosts(hosts):
    token = new_user(hosts.a, "quota-" + secrets.token_hex(3))
    before = len(objects(hosts.s3, hosts.bucket_url))

    def share(n: int) -> int:
        server = hosts.a if n % 2 else hosts.b
        with _api(server, token) as client:
            return client.post("/file/load", files={"file": (f"f{n}.bin", b"\x00" * MIB)},
                               headers={"Accept": "application/json"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(share, range(14)))
    assert statuses.count(201) == QUOTA // MIB and statuses.count(413) == 14 - QUOTA // MIB, statuses
    with _api(hosts.a, token) as client:
        assert client.get("/account/profile", headers={"Accept": "application/json"}).json()["used_bytes"] == QUOTA
    assert len(objects(hosts.s3, hosts.bucket_url)) - before == QUOTA // MIB  # refused uploads left no object


def test_the_file_cap_holds_exactly_across_hosts(hosts):
    token = new_user(hosts.a, "cap-" + secrets.token_hex(3))
    before = len(objects(hosts.s3, hosts.bucket_url))

    def post(n: int) -> int:
        server = hosts.a if n % 2 else hosts.b
        with _api(server, token) as client:
            return client.post("/file/buffer", content=b"\x01" * 1024,
                               headers={"X-Data-Type": "file", "X-File-Name": f"f{n}.bin"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, range(12))) == {201}
    with _api(hosts.b, token) as client:
        files = [item for item in client.get("/file/buffer/items").json()["items"] if item["type"] == "file"]
    assert len(files) == MAX_FILES
    assert len(objects(hosts.s3, hosts.bucket_url)) - before == MAX_FILES  # the rest left the bucket


async def test_redis_killed_hosts_keep_serving_and_sockets_converge(hosts):
    username = "redis-" + secrets.token_hex(3)
    laptop = await Device(hosts.a, username, register=True).login()
    down = False
    try:
        ws = await Device(hosts.b, username).socket(headers=laptop.cookie_header, origin=hosts.b.base_url)
        await next_message(ws, "hello")
        await next_message(ws, "buffer")
        hosts.redis.kill()
        down = True
        posted = await laptop.post_text("written while redis is down")  # HTTP goes on
        with httpx.Client(base_url=hosts.b.base_url, timeout=10) as b:
            b.cookies.update(laptop.http.cookies)
            assert b.get("/file/buffer").text == "written while redis is down"
            deadline = time.monotonic() + CONVERGE_SECONDS
            while b.get("/healthz").json()["broker"]["status"] != "degraded":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        hosts.redis.start()
        down = False
        latest = await converge(ws, posted["seq"], timeout=CONVERGE_SECONDS + 5)
        assert latest["text"] == "written while redis is down"
        await ws.close()
    finally:
        if down:
            hosts.redis.start()
        await laptop.close()



TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _tus_create(client: httpx.Client, length: int) -> str:
    response = client.post("/file/uploads", headers={**TUS, "Upload-Length": str(length),
                                                     "Upload-Metadata": "filename dHVzLmJpbg=="})
    assert response.status_code == 201, response.text
    return "/file/uploads/" + response.headers["Location"].rsplit("/", 1)[1]


def test_a_tus_upload_begun_on_a_resumes_and_finishes_on_b(hosts):
    """The partial bytes are in the bucket (server/s3_partials.py), not on A's disk."""
    token = new_user(hosts.a, "tus-" + secrets.token_hex(3))
    data = os.urandom(7 * MIB + 11)
    with _api(hosts.a, token) as a, _api(hosts.b, token) as b:
        url = _tus_create(a, len(data))
        assert a.patch(url, content=data[:3 * MIB], headers={**STREAM, "Upload-Offset": "0"}).status_code == 204
        assert os.listdir(hosts.a.data_dir / "uploads") == []
        assert int(b.head(url, headers=TUS).headers["Upload-Offset"]) == 3 * MIB
        middle = 5 * MIB + 3
        assert b.patch(url, content=data[3 * MIB:middle], headers={**STREAM, "Upload-Offset": str(3 * MIB)}
                       ).status_code == 204
        assert int(a.head(url, headers=TUS).headers["Upload-Offset"]) == middle
        done = b.patch(url, content=data[middle:], headers={**STREAM, "Upload-Offset": str(middle)})
        assert done.status_code == 204 and int(done.headers["Upload-Offset"]) == len(data)
        downloaded = a.get("/file/buffer")
        assert downloaded.status_code == 200
        assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_concurrent_patches_on_a_and_b_one_is_refused_and_bytes_never_interleave(hosts):
    token = new_user(hosts.a, "tus-busy-" + secrets.token_hex(3))
    data = os.urandom(2 * MIB)
    release = threading.Event()
    with _api(hosts.a, token) as a, _api(hosts.b, token) as b:
        url = _tus_create(a, len(data))
        public_id = url.rsplit("/", 1)[1]

        def slow_body():
            yield data[:MIB]
            release.wait(60)
            yield data[MIB:]

        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(a.patch, url, content=slow_body(), headers={**STREAM, "Upload-Offset": "0"})
            wait_until = time.monotonic() + 30
            while not hosts.rows("SELECT 1 FROM uploads WHERE public_id = %s AND lease_token IS NOT NULL",
                                 (public_id,)):
                assert time.monotonic() < wait_until, "host A never took the upload's lease"
                time.sleep(0.05)
            refused = b.patch(url, content=b"x" * 1000, headers={**STREAM, "Upload-Offset": "0"})
            assert refused.status_code == 409 and refused.json()["error"] == "upload_busy"
            release.set()
            assert first.result().status_code == 204
        downloaded = b.get("/file/buffer")
        assert downloaded.content == data
