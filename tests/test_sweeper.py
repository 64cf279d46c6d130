"""The sweeper: expired rows and their files, dead uploads, orphan files."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from server.services import services
from server import sweeper
from server.data_dir import ensure_data_dir
from server.db import Database
from server.models import files as files_model
from server.models import items as items_model
from server.models import users as users_model
from server.storage import Storage

FAR = 9e12


@pytest.fixture
async def env(tmp_path):
    ensure_data_dir(tmp_path)
    db = Database(tmp_path / "cloudbuffer.sqlite3")
    await db.open()
    storage = Storage(tmp_path)
    user = await db.write(users_model.insert_user, "alice", "hash")
    yield db, storage, user
    await db.close()


async def add_file(db, storage, user, name: str, *, expires_at: float, with_item: bool = True, mtime=None):
    storage.path_of(name).write_bytes(b"data of " + name.encode())
    if mtime is not None:
        os.utime(storage.path_of(name), (mtime, mtime))
    def insert(conn):
        stored = files_model.insert_file(conn, user.id, name, name + ".txt", "text/plain", 10, expires_at)
        if with_item:
            items_model.insert_item(conn, user.id, kind="file", file_id=stored.id, size=10,
                                    device_name="x", created_at=time.time(), expires_at=expires_at)
        return stored

    return await db.write(insert)


def names_on_disk(storage) -> list[str]:
    return sorted(os.listdir(storage.files_dir))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


async def test_expired_rows_and_files_are_removed(env):
    db, storage, user = env
    await add_file(db, storage, user, "expired1", expires_at=time.time() - 10)
    await add_file(db, storage, user, "expired2", expires_at=time.time() - 1)
    await add_file(db, storage, user, "alive", expires_at=FAR)
    await db.write(items_model.insert_item, user.id, kind="text", text="old", size=3, device_name="x",
                   created_at=1, expires_at=time.time() - 5)
    result = await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert result["files"] == 2
    assert result["rows"] == 5  # three items (two file, one text) and two files
    assert names_on_disk(storage) == ["alive"]
    assert await db.read(lambda conn: conn.value("SELECT COUNT(*) FROM items")) == 1
    # A second sweep finds nothing to do.
    assert await sweeper.sweep_once(db, storage, idle_seconds=60) == {"rows": 0, "files": 0, "temp_files": 0,
                                                                       "orphans": 0, "missing_files": 0,
                                                                       "uploads": 0, "partial_files": 0}


async def test_a_big_backlog_is_swept_in_batches(env, monkeypatch):
    db, storage, user = env
    monkeypatch.setattr(sweeper, "BATCH", 3)
    for n in range(10):
        await add_file(db, storage, user, f"old{n}", expires_at=time.time() - 1)
    await add_file(db, storage, user, "alive", expires_at=FAR)

    batches = []
    original = files_model.delete_expired_batch

    def counting(conn, now, limit):
        deleted, names = original(conn, now, limit)
        batches.append((limit, len(names)))
        return deleted, names

    monkeypatch.setattr(files_model, "delete_expired_batch", counting)
    result = await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert result["files"] == 10
    assert names_on_disk(storage) == ["alive"]
    assert len(batches) > 3 and all(limit == 3 and removed <= 3 for limit, removed in batches)


async def test_temp_files_of_dead_processes_are_removed(env):
    db, storage, _ = env
    dead = storage.tmp_dir / f"{dead_pid()}-{'a' * 32}.part"
    mine = storage.tmp_dir / f"{os.getpid()}-{'b' * 32}.part"  # an upload in progress
    other_live = storage.tmp_dir / f"1-{'c' * 32}.part"  # pid 1 is always alive
    for path in (dead, mine, other_live):
        path.write_bytes(b"partial")
    result = await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert result["temp_files"] == 1
    assert not dead.exists() and mine.exists() and other_live.exists()


async def test_temp_files_idle_far_too_long_are_removed_even_from_live_processes(env):
    db, storage, _ = env
    stuck = storage.tmp_dir / f"{os.getpid()}-{'d' * 32}.part"
    recent = storage.tmp_dir / f"{os.getpid()}-{'e' * 32}.part"
    stuck.write_bytes(b"stuck")
    recent.write_bytes(b"recent")
    old = time.time() - 3 * 60
    os.utime(stuck, (old, old))
    await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert not stuck.exists() and recent.exists()


async def test_orphan_files_older_than_the_grace_are_removed(env):
    db, storage, user = env
    long_ago = time.time() - sweeper.ORPHAN_GRACE_SECONDS - 60
    await add_file(db, storage, user, "known-old", expires_at=FAR, mtime=long_ago)
    for name, mtime in (("orphan-old", long_ago), ("orphan-new", None)):
        storage.path_of(name).write_bytes(b"no row")
        if mtime:
            os.utime(storage.path_of(name), (mtime, mtime))
    result = await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert result["orphans"] == 1
    # A young orphan may be an upload whose row is being committed right now.
    assert names_on_disk(storage) == ["known-old", "orphan-new"]


async def test_files_nothing_points_at_are_swept(env):
    db, storage, user = env
    await add_file(db, storage, user, "unreferenced", expires_at=FAR, with_item=False)
    await sweeper.sweep_once(db, storage, idle_seconds=60)
    assert names_on_disk(storage) == []


async def test_the_loop_survives_a_failed_sweep(env, caplog):
    db, storage, _ = env
    storage.files_dir.rename(storage.files_dir.with_name("files-moved"))  # scandir will fail
    task = asyncio.create_task(sweeper.run_sweeper(db, storage, interval=0.05, idle_seconds=60))
    await asyncio.sleep(0.2)
    assert not task.done()
    storage.files_dir.with_name("files-moved").rename(storage.files_dir)
    orphan = storage.path_of("orphan")
    orphan.write_bytes(b"x")
    os.utime(orphan, (1, 1))
    for _ in range(50):
        if not orphan.exists():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not orphan.exists()  # it kept sweeping once the disk was back
    assert "sweep failed" in caplog.text


async def test_the_app_sweeps_at_start_up(tmp_path):
    from server import create_app

    data_dir = tmp_path / "data"
    app = create_app({"DATA_DIR": str(data_dir)})
    async with app.test_app():
        user = await services(app).db.write(users_model.insert_user, "alice", "hash")
        await add_file(services(app).db, services(app).storage, user, "expired-before-restart", expires_at=time.time() - 1)
    restarted = create_app({"DATA_DIR": str(data_dir)})
    async with restarted.test_app():
        for _ in range(100):
            if not (data_dir / "files" / "expired-before-restart").exists():
                break
            await asyncio.sleep(0.02)
        assert os.listdir(data_dir / "files") == []


async def test_only_one_host_sweeps_a_shared_database_at_a_time(postgres_url):
    from server.pg_dialect import POSTGRES

    host_a, host_b = Database(postgres_url, POSTGRES), Database(postgres_url, POSTGRES)
    await host_a.open()
    await host_b.open()
    try:
        async with sweeper._sweepers_turn(host_a) as a_sweeps:
            async with sweeper._sweepers_turn(host_b) as b_sweeps:
                assert a_sweeps and not b_sweeps
        async with sweeper._sweepers_turn(host_b) as b_sweeps:  # A's turn has ended
            assert b_sweeps
        # A host that dies holding the lock frees it with its connection.
        async with sweeper._sweepers_turn(host_a) as a_sweeps:
            assert a_sweeps
            await host_a.close()
            async with sweeper._sweepers_turn(host_b) as b_sweeps:
                assert b_sweeps
            await host_a.open()
    finally:
        await host_a.close()
        await host_b.close()


async def test_a_sqlite_file_is_always_this_hosts_to_sweep(env):
    db, _, _ = env
    async with sweeper._sweepers_turn(db) as mine:
        assert mine
