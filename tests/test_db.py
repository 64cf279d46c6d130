"""The database layer: db.read and db.write, each one trip to the database's
own thread; a write is one transaction, a read one snapshot, and a cancelled
writer still learns whether its transaction committed."""
from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from server.db import Database

REPO = Path(__file__).resolve().parent.parent


def _add_user(conn, name: str) -> int:
    return conn.value("INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', 0) RETURNING id",
                      (name,))


def _user_id(conn, name: str) -> int | None:
    return conn.value("SELECT id FROM users WHERE username = ?", (name,))


def _usernames(conn) -> list[str]:
    return conn.column("SELECT username FROM users ORDER BY id")


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "db.sqlite3")
    await database.open()
    yield database
    await database.close()


async def test_the_reader_sees_every_commit_while_other_reads_are_in_flight(db):
    for n in range(200):
        await db.write(_add_user, f"user{n}")
    stop = asyncio.Event()

    async def busy_reader() -> None:
        # Many overlapping multi-row reads, as concurrent requests make.
        while not stop.is_set():
            await db.read(_usernames)

    readers = [asyncio.create_task(busy_reader()) for _ in range(4)]
    try:
        for n in range(100):
            await db.write(_add_user, f"new{n}")
            assert await db.read(_user_id, f"new{n}") is not None, f"commit {n} not visible to the reader"
    finally:
        stop.set()
        await asyncio.gather(*readers)


async def test_a_write_is_one_transaction_rolled_back_whole_on_an_error(db):
    def two_then_fail(conn):
        _add_user(conn, "first")
        _add_user(conn, "second")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.write(two_then_fail)
    assert await db.read(_usernames) == []
    # A failing statement (here a unique constraint) rolls back the statements before it too.
    await db.write(_add_user, "taken")

    def one_then_duplicate(conn):
        _add_user(conn, "fresh")
        _add_user(conn, "TAKEN")  # usernames are unique case-insensitively

    with pytest.raises(sqlite3.IntegrityError):
        await db.write(one_then_duplicate)
    assert await db.read(_usernames) == ["taken"]
    # The writer is usable again right after.
    await db.write(_add_user, "after")
    assert await db.read(_usernames) == ["taken", "after"]


async def test_write_passes_arguments_and_returns_the_result(db):
    def add(conn, name, *, suffix=""):
        return _add_user(conn, name + suffix)

    user_id = await db.write(add, "alice", suffix="-2")
    assert await db.read(_user_id, name="alice-2") == user_id


async def test_the_reader_cannot_write(db):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(_add_user, "sneaky")
    assert await db.read(_usernames) == []


async def test_one_read_sees_one_snapshot(db):
    """A write that commits while a read function runs is not half-seen by it."""
    await db.write(_add_user, "before")
    read_first = threading.Event()
    written = threading.Event()

    def count_twice(conn):
        first = len(_usernames(conn))
        read_first.set()
        written.wait(10)
        return first, len(_usernames(conn))

    reading = asyncio.create_task(db.read(count_twice))
    await asyncio.to_thread(read_first.wait, 10)
    await db.write(_add_user, "during")
    written.set()
    assert await reading == (1, 1)
    assert await db.read(lambda conn: len(_usernames(conn))) == 2


async def test_a_writer_cancelled_mid_transaction_is_told_it_committed(db):
    started, go_on = threading.Event(), threading.Event()

    def slow_add(conn):
        started.set()
        go_on.wait(10)
        return _add_user(conn, "slow")

    writing = asyncio.create_task(db.write(slow_add))
    await asyncio.to_thread(started.wait, 10)
    writing.cancel()
    await asyncio.sleep(0)  # the cancellation is delivered while the transaction still runs
    assert not writing.done()  # …and write() waits for its end
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert await db.read(_usernames) == ["slow"]  # CancelledError from write() means committed


async def test_a_writer_cancelled_mid_transaction_gets_the_rollbacks_error(db):
    started, go_on = threading.Event(), threading.Event()

    def slow_failure(conn):
        _add_user(conn, "never")
        started.set()
        go_on.wait(10)
        raise RuntimeError("disk on fire")

    writing = asyncio.create_task(db.write(slow_failure))
    await asyncio.to_thread(started.wait, 10)
    writing.cancel()
    await asyncio.sleep(0)
    writing.cancel()  # cancelled twice: still waits for the outcome
    await asyncio.sleep(0)
    go_on.set()
    with pytest.raises(RuntimeError, match="disk on fire"):
        await writing
    assert await db.read(_usernames) == []


async def test_writes_of_one_process_run_in_the_order_asked(db):
    # One writer thread: a write asked for first commits first, so ids follow the order of the calls.
    ids = await asyncio.gather(*(db.write(_add_user, f"u{n}") for n in range(50)))
    assert ids == sorted(ids)
    assert await db.read(_usernames) == [f"u{n}" for n in range(50)]


async def test_each_connection_lives_on_its_own_thread(db):
    def thread_name(conn):
        return threading.current_thread().name

    assert await db.read(thread_name) == "cloudbuffer-db-reader"
    assert await db.write(thread_name) == "cloudbuffer-db-writer"
    assert threading.current_thread().name != "cloudbuffer-db-reader"


async def test_closed_database(tmp_path):
    database = Database(tmp_path / "db.sqlite3")
    await database.open()
    assert await database.ping()
    await database.close()
    assert not await database.ping()
    with pytest.raises(AssertionError, match="not open"):
        await database.read(_usernames)
    # Reopened, the data is there.
    await database.open()
    try:
        assert await database.read(_usernames) == []
    finally:
        await database.close()


OTHER_PROCESS = r"""
import asyncio, sys
from pathlib import Path
from server.db import Database

async def main():
    db = Database(Path(sys.argv[1]))
    await db.open()
    await db.read(lambda conn: conn.value("SELECT COUNT(*) FROM users"))
    await db.write(lambda conn: conn.run("INSERT INTO users (username, password_hash, created_at) VALUES ('other', 'x', 0)"))
    await db.close()

asyncio.run(main())
"""


async def test_another_process_closing_its_connections_leaves_ours_working(db, tmp_path):
    """`cloudbuffer user …` opens and closes the database beside a running
    server. If this process had ever opened and closed the database file
    outside SQLite, that would have dropped its SQLite locks (POSIX locks are
    per process), the other process would have taken its close for the last
    one and removed the WAL, and our later commits would be seen by nobody
    else."""
    await db.write(_add_user, "before")
    assert await db.read(_usernames) == ["before"]  # both of our connections are open
    other = await asyncio.create_subprocess_exec(sys.executable, "-c", OTHER_PROCESS, str(db.path), cwd=REPO)
    assert await other.wait() == 0
    await db.write(_add_user, "after")
    fresh = sqlite3.connect(db.path)
    try:
        assert [row[0] for row in fresh.execute("SELECT username FROM users ORDER BY id")] == [
            "before", "other", "after"]
    finally:
        fresh.close()
    assert await db.read(_usernames) == ["before", "other", "after"]
