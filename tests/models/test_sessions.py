"""sessions and api_tokens: only hashes are stored; every change is per user."""
from __future__ import annotations

import hashlib

from server.models import sessions as sessions_model
from tests.models.conftest import add_user


async def test_sessions_are_found_by_key_and_stored_hashed(db):
    user = await add_user(db)
    async with db.transaction() as conn:
        session = await sessions_model.insert_session(conn, user.id, "the-session-key", "Firefox on Linux")
    assert session.user_id == user.id and session.device_name == "Firefox on Linux"
    assert await sessions_model.select_session_with_owner(db.reader, "the-session-key") == (session, user.username)
    assert await sessions_model.select_session_with_owner(db.reader, "another-key") is None
    async with db.reader.execute("SELECT key_hash FROM sessions") as cursor:
        (stored,) = await cursor.fetchone()
    assert stored == hashlib.sha256(b"the-session-key").digest()


async def test_sessions_are_listed_most_recent_first_and_touched(db):
    user = await add_user(db)
    async with db.transaction() as conn:
        first = await sessions_model.insert_session(conn, user.id, "k1", "laptop")
        second = await sessions_model.insert_session(conn, user.id, "k2", "phone")
        await sessions_model.touch_session(conn, first.id, second.last_seen_at + 100)
    listed = await sessions_model.select_sessions(db.reader, user.id)
    assert [s.id for s in listed] == [first.id, second.id]
    assert listed[0].last_seen_at == second.last_seen_at + 100


async def test_rename_and_delete_only_touch_the_owners_sessions(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    async with db.transaction() as conn:
        session = await sessions_model.insert_session(conn, alice.id, "k", "laptop")
        assert not await sessions_model.update_session_name(conn, bob.id, session.id, "pwned")
        assert not await sessions_model.delete_session(conn, bob.id, session.id)
        assert await sessions_model.update_session_name(conn, alice.id, session.id, "work laptop")
    assert (await sessions_model.select_sessions(db.reader, alice.id))[0].device_name == "work laptop"
    async with db.transaction() as conn:
        assert await sessions_model.delete_session(conn, alice.id, session.id)
        assert not await sessions_model.delete_session(conn, alice.id, session.id)
    assert await sessions_model.select_session_with_owner(db.reader, "k") is None


async def test_delete_other_sessions(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    async with db.transaction() as conn:
        keep = await sessions_model.insert_session(conn, user.id, "k1", "a")
        gone = await sessions_model.insert_session(conn, user.id, "k2", "b")
        await sessions_model.insert_session(conn, other.id, "k3", "c")
        assert await sessions_model.delete_other_sessions(conn, user.id, keep.id) == [gone.id]
        assert await sessions_model.delete_other_sessions(conn, user.id, None) == [keep.id]
    assert await sessions_model.select_sessions(db.reader, user.id) == []
    assert len(await sessions_model.select_sessions(db.reader, other.id)) == 1


async def test_api_tokens(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    async with db.transaction() as conn:
        token = await sessions_model.insert_api_token(conn, alice.id, "backup", "cb_secret")
    assert token.last_used_at is None
    assert await sessions_model.select_api_token_with_owner(db.reader, "cb_secret") == (token, "alice")
    assert await sessions_model.select_api_token_with_owner(db.reader, "cb_other") is None
    async with db.reader.execute("SELECT token_hash FROM api_tokens") as cursor:
        assert (await cursor.fetchone())[0] == hashlib.sha256(b"cb_secret").digest()

    async with db.transaction() as conn:
        await sessions_model.touch_api_token(conn, token.id, 1234.5)
    assert (await sessions_model.select_api_tokens(db.reader, alice.id))[0].last_used_at == 1234.5
    assert await sessions_model.select_api_tokens(db.reader, bob.id) == []

    async with db.transaction() as conn:
        assert not await sessions_model.delete_api_token(conn, bob.id, token.id)
        assert await sessions_model.delete_api_token(conn, alice.id, token.id)
    assert await sessions_model.select_api_token_with_owner(db.reader, "cb_secret") is None
