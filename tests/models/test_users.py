"""users: case-insensitive names, the seq counter, cascading deletes."""
from __future__ import annotations

import asyncio
import threading

import pytest

from server.models import files as files_model
from server.models import items as items_model
from server.models import sessions as sessions_model
from server.models import users as users_model
from server.db import Database
from server.models.schema import SQLITE_MIGRATIONS
from server.models.schema_postgres import POSTGRES_MIGRATIONS
from tests.models.conftest import add_user, count_rows


async def test_insert_and_select(db):
    user = await add_user(db, "Alice")
    assert user.id > 0 and user.username == "Alice" and user.seq == 0
    assert await db.read(users_model.select_user_by_id, user.id) == user
    assert await db.read(users_model.select_user_by_username, "aLICE") == user
    assert await db.read(users_model.select_user_by_username, "bob") is None
    assert await db.read(users_model.select_user_by_id, 999) is None


async def test_usernames_are_unique_case_insensitively(db):
    await add_user(db, "alice")

    def insert_three(conn):
        return [users_model.insert_user(conn, name, "hash") for name in ("ALICE", "alice", "alice2")]

    upper, same, other = await db.write(insert_three)
    assert upper is None and same is None and other is not None


async def test_update_password(db):
    user = await add_user(db)
    assert await db.write(users_model.update_user_password, user.id, "new hash")
    assert not await db.write(users_model.update_user_password, 999, "new hash")
    assert (await db.read(users_model.select_user_by_id, user.id)).password_hash == "new hash"


async def test_seq_increments_per_user(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")

    def bump(conn):
        return [users_model.increment_user_seq(conn, alice.id) for _ in range(3)], \
            users_model.increment_user_seq(conn, bob.id)

    assert await db.write(bump) == ([1, 2, 3], 1)
    assert await db.read(users_model.select_user_seq, alice.id) == 3
    assert await db.read(users_model.select_user_seq, 999) == 0


async def test_a_failed_transaction_rolls_back_the_seq(db):
    user = await add_user(db)

    def bump_then_fail(conn):
        users_model.increment_user_seq(conn, user.id)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.write(bump_then_fail)
    assert await db.read(users_model.select_user_seq, user.id) == 0


async def test_lock_user_is_nothing_more_under_sqlites_one_write_lock(db, engine):
    if engine != "sqlite":
        return  # PostgreSQL: test_lock_user_holds_the_row_against_another_host below
    user = await add_user(db)
    assert db.dialect.serializes_writes
    assert await db.write(users_model.lock_user, user.id) is None


def _waiting_for_a_lock(conn) -> int:
    return conn.value("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")


async def test_lock_user_holds_the_row_against_another_host(postgres_url):
    """Two Database objects are two hosts: while one holds the user's row,
    the other's transaction on that user waits for it, then sees its commit."""
    from server.pg_dialect import POSTGRES

    host_a, host_b = Database(postgres_url, POSTGRES), Database(postgres_url, POSTGRES)
    await host_a.open()
    await host_b.open()
    try:
        user = await add_user(host_a)
        locked, release = threading.Event(), threading.Event()

        def hold(conn):
            users_model.lock_user(conn, user.id)
            locked.set()
            release.wait(30)
            return users_model.increment_user_seq(conn, user.id)

        def check_then_bump(conn):
            users_model.lock_user(conn, user.id)
            return users_model.select_user_seq(conn, user.id), users_model.increment_user_seq(conn, user.id)

        holding = asyncio.create_task(host_a.write(hold))
        await asyncio.to_thread(locked.wait, 30)
        waiting = asyncio.create_task(host_b.write(check_then_bump))
        while await host_a.read(_waiting_for_a_lock) == 0:
            await asyncio.sleep(0.01)
        assert not waiting.done()
        release.set()
        assert await holding == 1
        assert await waiting == (1, 2)  # it read the seq only after the other's commit
    finally:
        await host_a.close()
        await host_b.close()


async def test_deleting_a_user_deletes_everything_they_own(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")

    def own_things(conn):
        sessions_model.insert_session(conn, user.id, "session-key", "laptop")
        sessions_model.insert_api_token(conn, user.id, "script", "cb_token")
        stored = files_model.insert_file(conn, user.id, "abc", "a.txt", "text/plain", 3, 9e12)
        items_model.insert_item(conn, user.id, kind="file", file_id=stored.id, size=3, device_name="laptop",
                                created_at=1, expires_at=9e12)
        files_model.insert_share(conn, user.id, stored.id, "share-token", b"nonce", 9e12)
        sessions_model.insert_session(conn, other.id, "other-key", "phone")

    await db.write(own_things)
    assert await db.write(users_model.delete_user, user.id)
    assert not await db.write(users_model.delete_user, user.id)
    for table, expected in (("sessions", 1), ("api_tokens", 0), ("files", 0), ("items", 0), ("shares", 0)):
        assert await db.read(count_rows, table) == expected, table


async def test_schema_enforces_item_kinds(db):
    user = await add_user(db)
    with pytest.raises(db.dialect.integrity_errors):
        await db.write(items_model.insert_item, user.id, kind="text", size=0, device_name="x", created_at=1,
                       expires_at=2)  # a text item without text
    with pytest.raises(db.dialect.integrity_errors):
        await db.write(items_model.insert_item, user.id, kind="image", text="x", size=1, device_name="x",
                       created_at=1, expires_at=2)
    assert await db.read(count_rows, "items") == 0
    assert await db.read(users_model.select_user_seq, user.id) == 0  # the seq bump went with the failed insert


def _pragmas(conn) -> tuple:
    return tuple(conn.value(f"PRAGMA {name}") for name in ("journal_mode", "foreign_keys", "busy_timeout"))


def _read_only(conn) -> str:
    return conn.value("SHOW transaction_read_only")


async def test_database_settings(db, engine):
    if engine == "sqlite":
        journal_mode, foreign_keys, busy_timeout = await db.read(_pragmas)
        assert journal_mode == "wal" and foreign_keys == 1 and busy_timeout >= 5000
    else:
        assert await db.read(_read_only) == "on" and await db.write(_read_only) == "off"
    assert await db.ping()


async def test_migrations_run_once(tmp_path):
    for _ in range(2):  # reopening an up-to-date database changes nothing
        database = Database(tmp_path / "db.sqlite3")
        await database.open()
        assert await database.read(lambda conn: conn.value("PRAGMA user_version")) == len(SQLITE_MIGRATIONS)
        await database.close()


async def test_postgres_migrations_match_sqlites_and_hosts_starting_together_run_them_once(postgres_url):
    from server.pg_dialect import POSTGRES

    # One PostgreSQL migration for each of SQLite's: a version number means one schema on both.
    assert len(POSTGRES_MIGRATIONS) == len(SQLITE_MIGRATIONS)
    hosts = [Database(postgres_url, POSTGRES) for _ in range(3)]
    await asyncio.gather(*(host.open() for host in hosts))  # the advisory lock puts them in a row
    for host in hosts:
        assert await host.read(lambda conn: conn.value("SELECT version FROM cloudbuffer_schema")) \
            == len(POSTGRES_MIGRATIONS)
        assert await host.read(lambda conn: conn.value("SELECT COUNT(*) FROM cloudbuffer_schema")) == 1
        await host.close()
