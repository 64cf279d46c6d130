"""users: case-insensitive names, the seq counter, cascading deletes."""
from __future__ import annotations

import sqlite3

import pytest

from server.models import files as files_model
from server.models import items as items_model
from server.models import sessions as sessions_model
from server.models import users as users_model
from server.models.schema import SQLITE_MIGRATIONS
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


async def test_lock_user_is_nothing_more_under_sqlites_one_write_lock(db):
    user = await add_user(db)
    assert db.dialect.serializes_writes
    assert await db.write(users_model.lock_user, user.id) is None


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
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(items_model.insert_item, user.id, kind="text", size=0, device_name="x", created_at=1,
                       expires_at=2)  # a text item without text
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(items_model.insert_item, user.id, kind="image", text="x", size=1, device_name="x",
                       created_at=1, expires_at=2)
    assert await db.read(count_rows, "items") == 0
    assert await db.read(users_model.select_user_seq, user.id) == 0  # the seq bump went with the failed insert


def _pragmas(conn) -> tuple:
    return tuple(conn.value(f"PRAGMA {name}") for name in ("journal_mode", "foreign_keys", "busy_timeout"))


async def test_database_settings(db):
    journal_mode, foreign_keys, busy_timeout = await db.read(_pragmas)
    assert journal_mode == "wal" and foreign_keys == 1 and busy_timeout >= 5000
    assert await db.ping()


async def test_migrations_run_once(tmp_path):
    from server.db import Database

    for _ in range(2):  # reopening an up-to-date database changes nothing
        database = Database(tmp_path / "db.sqlite3")
        await database.open()
        assert await database.read(lambda conn: conn.value("PRAGMA user_version")) == len(SQLITE_MIGRATIONS)
        await database.close()
