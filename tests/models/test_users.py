"""users: case-insensitive names, the seq counter, cascading deletes."""
from __future__ import annotations

import sqlite3

import pytest

from server.models import files as files_model
from server.models import items as items_model
from server.models import sessions as sessions_model
from server.models import users as users_model
from tests.models.conftest import add_user


async def test_insert_and_select(db):
    user = await add_user(db, "Alice")
    assert user.id > 0 and user.username == "Alice" and user.seq == 0
    assert await users_model.select_user_by_id(db.reader, user.id) == user
    assert await users_model.select_user_by_username(db.reader, "aLICE") == user
    assert await users_model.select_user_by_username(db.reader, "bob") is None
    assert await users_model.select_user_by_id(db.reader, 999) is None


async def test_usernames_are_unique_case_insensitively(db):
    await add_user(db, "alice")
    async with db.transaction() as conn:
        assert await users_model.insert_user(conn, "ALICE", "hash") is None
        assert await users_model.insert_user(conn, "alice", "hash") is None
        assert await users_model.insert_user(conn, "alice2", "hash") is not None


async def test_update_password(db):
    user = await add_user(db)
    async with db.transaction() as conn:
        assert await users_model.update_user_password(conn, user.id, "new hash")
        assert not await users_model.update_user_password(conn, 999, "new hash")
    assert (await users_model.select_user_by_id(db.reader, user.id)).password_hash == "new hash"


async def test_seq_increments_per_user(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    async with db.transaction() as conn:
        assert [await users_model.increment_user_seq(conn, alice.id) for _ in range(3)] == [1, 2, 3]
        assert await users_model.increment_user_seq(conn, bob.id) == 1
    assert await users_model.select_user_seq(db.reader, alice.id) == 3
    assert await users_model.select_user_seq(db.reader, 999) == 0


async def test_a_failed_transaction_rolls_back_the_seq(db):
    user = await add_user(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await users_model.increment_user_seq(conn, user.id)
            raise RuntimeError("boom")
    assert await users_model.select_user_seq(db.reader, user.id) == 0


async def test_deleting_a_user_deletes_everything_they_own(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    async with db.transaction() as conn:
        await sessions_model.insert_session(conn, user.id, "session-key", "laptop")
        await sessions_model.insert_api_token(conn, user.id, "script", "cb_token")
        stored = await files_model.insert_file(conn, user.id, "abc", "a.txt", "text/plain", 3, 9e12)
        await items_model.insert_item(conn, user.id, kind="file", file_id=stored.id, size=3, device_name="laptop",
                                      created_at=1, expires_at=9e12)
        await files_model.insert_share(conn, user.id, stored.id, "share-token", b"nonce", 9e12)
        await sessions_model.insert_session(conn, other.id, "other-key", "phone")
    async with db.transaction() as conn:
        assert await users_model.delete_user(conn, user.id)
        assert not await users_model.delete_user(conn, user.id)
    for table, expected in (("sessions", 1), ("api_tokens", 0), ("files", 0), ("items", 0), ("shares", 0)):
        async with db.reader.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
            assert (await cursor.fetchone())[0] == expected, table


async def test_schema_enforces_item_kinds(db):
    user = await add_user(db)
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as conn:
            await items_model.insert_item(conn, user.id, kind="text", size=0, device_name="x", created_at=1,
                                          expires_at=2)  # a text item without text
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as conn:
            await items_model.insert_item(conn, user.id, kind="image", text="x", size=1, device_name="x",
                                          created_at=1, expires_at=2)


async def test_database_settings(db):
    async with db.reader.execute("PRAGMA journal_mode") as cursor:
        assert (await cursor.fetchone())[0] == "wal"
    async with db.reader.execute("PRAGMA foreign_keys") as cursor:
        assert (await cursor.fetchone())[0] == 1
    async with db.reader.execute("PRAGMA busy_timeout") as cursor:
        assert (await cursor.fetchone())[0] >= 5000
    assert await db.ping()


async def test_migrations_run_once(tmp_path):
    from server.db import MIGRATIONS, Database

    for _ in range(2):  # reopening an up-to-date database changes nothing
        database = Database(tmp_path / "db.sqlite3")
        await database.open()
        async with database.reader.execute("PRAGMA user_version") as cursor:
            assert (await cursor.fetchone())[0] == len(MIGRATIONS)
        await database.close()
