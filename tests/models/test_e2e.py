"""models/e2e.py on a temp database: what deleting a device does to the
encryption state in the same statement, with no code of ours running."""
from __future__ import annotations

from server.models import e2e as e2e_model
from server.models import sessions as sessions_model
from server.models import users as users_model


def _enable_with_two_devices(conn):
    user = users_model.insert_user(conn, "alice", "hash")
    kept = sessions_model.insert_session(conn, user.id, "key-1", "Laptop")
    gone = sessions_model.insert_api_token(conn, user.id, "cli", "cb_token")
    assert e2e_model.insert_account(conn, user.id, "recovery-public", "sealed")
    for device in (f"session:{kept.id}", f"token:{gone.id}"):
        e2e_model.upsert_device(conn, user.id, device, f"key of {device}", "attest")
        e2e_model.upsert_wrap(conn, user.id, 1, device, f"wrap for {device}")
    e2e_model.upsert_wrap(conn, user.id, 1, "recovery", "wrap for recovery")
    return user, kept, gone


def _advance_twice(conn, user_id: int) -> tuple[bool, bool]:
    return e2e_model.advance_epoch(conn, user_id, 1), e2e_model.advance_epoch(conn, user_id, 1)


async def test_deleting_a_device_deletes_its_wraps_and_marks_a_rotation_in_the_same_statement(db):
    user, kept, gone = await db.write(_enable_with_two_devices)
    assert (await db.read(e2e_model.select_account, user.id)).rotation_needed is False

    assert await db.write(sessions_model.delete_api_token, user.id, gone.id)
    account = await db.read(e2e_model.select_account, user.id)
    # Nothing but the DELETE ran: the mark is the device row the delete left behind.
    assert account.rotation_needed is True
    assert [d.device for d in await db.read(e2e_model.select_devices, user.id)] == [f"session:{kept.id}"]
    assert await db.read(e2e_model.select_wraps_for, user.id, f"token:{gone.id}") == []
    assert [w.recipient for w in await db.read(e2e_model.select_wraps_for, user.id, "recovery")] == ["recovery"]

    settled = await db.write(e2e_model.settle_revoked, user.id)
    assert settled.rotation_needed is True
    assert await db.read(lambda conn: conn.column("SELECT public_key FROM e2e_devices")) == [
        f"key of session:{kept.id}"]
    assert await db.write(_advance_twice, user.id) == (True, False)  # the second: the optimistic check
    account = await db.read(e2e_model.select_account, user.id)
    assert (account.epoch, account.rotation_needed) == (2, False)


async def test_settling_an_account_without_encryption_does_nothing(db):
    user = await db.write(users_model.insert_user, "bob", "hash")
    assert await db.write(e2e_model.settle_revoked, user.id) is None
    assert await db.read(e2e_model.select_account, user.id) is None
