"""sessions and api_tokens: only hashes are stored; every change is per user."""
from __future__ import annotations

import hashlib

from server.models import sessions as sessions_model
from server.models import users as users_model
from tests.models.conftest import add_user


async def test_sessions_are_found_by_key_and_stored_hashed(db):
    user = await add_user(db)
    session = await db.write(sessions_model.insert_session, user.id, "the-session-key", "Firefox on Linux")
    assert session.user_id == user.id and session.device_name == "Firefox on Linux"
    assert await db.read(sessions_model.select_session_with_owner, "the-session-key") == (session, user.username)
    assert await db.read(sessions_model.select_session_with_owner, "another-key") is None
    stored = await db.read(lambda conn: conn.value("SELECT key_hash FROM sessions"))
    assert stored == hashlib.sha256(b"the-session-key").digest()


async def test_sessions_are_listed_most_recent_first_and_touched(db):
    user = await add_user(db)
    def add_two_touch_first(conn):
        first = sessions_model.insert_session(conn, user.id, "k1", "laptop")
        second = sessions_model.insert_session(conn, user.id, "k2", "phone")
        sessions_model.touch_session(conn, first.id, second.last_seen_at + 100)
        return first, second

    first, second = await db.write(add_two_touch_first)
    listed = await db.read(sessions_model.select_sessions, user.id)
    assert [s.id for s in listed] == [first.id, second.id]
    assert listed[0].last_seen_at == second.last_seen_at + 100


async def test_rename_and_delete_only_touch_the_owners_sessions(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    session = await db.write(sessions_model.insert_session, alice.id, "k", "laptop")
    assert not await db.write(sessions_model.update_session_name, bob.id, session.id, "pwned")
    assert not await db.write(sessions_model.delete_session, bob.id, session.id)
    assert await db.write(sessions_model.update_session_name, alice.id, session.id, "work laptop")
    assert (await db.read(sessions_model.select_sessions, alice.id))[0].device_name == "work laptop"
    assert await db.write(sessions_model.delete_session, alice.id, session.id)
    assert not await db.write(sessions_model.delete_session, alice.id, session.id)
    assert await db.read(sessions_model.select_session_with_owner, "k") is None


async def test_delete_other_sessions(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    keep = await db.write(sessions_model.insert_session, user.id, "k1", "a")
    gone = await db.write(sessions_model.insert_session, user.id, "k2", "b")
    await db.write(sessions_model.insert_session, other.id, "k3", "c")
    assert await db.write(sessions_model.delete_other_sessions, user.id, keep.id) == [gone.id]
    assert await db.write(sessions_model.delete_other_sessions, user.id, None) == [keep.id]
    assert await db.read(sessions_model.select_sessions, user.id) == []
    assert len(await db.read(sessions_model.select_sessions, other.id)) == 1


async def test_api_tokens(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    token = await db.write(sessions_model.insert_api_token, alice.id, "backup", "cb_secret")
    assert token.last_used_at is None
    assert await db.read(sessions_model.select_api_token_with_owner, "cb_secret") == (token, "alice")
    assert await db.read(sessions_model.select_api_token_with_owner, "cb_other") is None
    assert await db.read(lambda conn: conn.value("SELECT token_hash FROM api_tokens")) == \
        hashlib.sha256(b"cb_secret").digest()

    await db.write(sessions_model.touch_api_token, token.id, 1234.5)
    assert (await db.read(sessions_model.select_api_tokens, alice.id))[0].last_used_at == 1234.5
    assert await db.read(sessions_model.select_api_tokens, bob.id) == []

    assert not await db.write(sessions_model.delete_api_token, bob.id, token.id)
    assert await db.write(sessions_model.delete_api_token, alice.id, token.id)
    assert await db.read(sessions_model.select_api_token_with_owner, "cb_secret") is None


async def test_a_new_password_ends_other_devices(db):
    user = await add_user(db)
    keep = await db.write(sessions_model.insert_session, user.id, "k1", "laptop")
    gone = await db.write(sessions_model.insert_session, user.id, "k2", "phone")
    token = await db.write(sessions_model.insert_api_token, user.id, "script", "cb_t")
    assert await db.write(sessions_model.end_devices_after_password_change, user.id, keep.id, True) == [f"s{gone.id}"]
    assert await db.read(sessions_model.select_api_tokens, user.id) != []
    assert await db.write(sessions_model.change_password, user.id, "new hash", None, False) == \
        [f"s{keep.id}", f"t{token.id}"]
    assert (await db.read(users_model.select_user_by_id, user.id)).password_hash == "new hash"
    assert await db.read(sessions_model.select_sessions, user.id) == []
    assert await db.read(sessions_model.select_api_tokens, user.id) == []
