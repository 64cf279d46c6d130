"""models/e2e.py on a temp database: what deleting a device does to the
encryption state in the same statement, with no code of ours running."""
from __future__ import annotations

from server.models import e2e as e2e_model
from server.models import sessions as sessions_model
from server.models import users as users_model


async def test_deleting_a_device_deletes_its_wraps_and_marks_a_rotation_in_the_same_statement(db):
    async with db.transaction() as conn:
        user = await users_model.insert_user(conn, "alice", "hash")
        kept = await sessions_model.insert_session(conn, user.id, "key-1", "Laptop")
        gone = await sessions_model.insert_api_token(conn, user.id, "cli", "cb_token")
        assert await e2e_model.insert_account(conn, user.id, "recovery-public", "sealed")
        for device in (f"session:{kept.id}", f"token:{gone.id}"):
            await e2e_model.upsert_device(conn, user.id, device, f"key of {device}", "attest")
            await e2e_model.upsert_wrap(conn, user.id, 1, device, f"wrap for {device}")
        await e2e_model.upsert_wrap(conn, user.id, 1, "recovery", "wrap for recovery")
    assert (await e2e_model.select_account(db.reader, user.id)).rotation_needed is False

    async with db.transaction() as conn:
        assert await sessions_model.delete_api_token(conn, user.id, gone.id)
    account = await e2e_model.select_account(db.reader, user.id)
    # Nothing but the DELETE ran: the mark is the device row the delete left behind.
    assert account.rotation_needed is True
    assert [d.device for d in await e2e_model.select_devices(db.reader, user.id)] == [f"session:{kept.id}"]
    assert await e2e_model.select_wraps_for(db.reader, user.id, f"token:{gone.id}") == []
    assert [w.recipient for w in await e2e_model.select_wraps_for(db.reader, user.id, "recovery")] == ["recovery"]

    async with db.transaction() as conn:
        settled = await e2e_model.settle_revoked(conn, user.id)
    assert settled.rotation_needed is True
    async with db.reader.execute("SELECT public_key FROM e2e_devices") as cursor:
        assert [row[0] for row in await cursor.fetchall()] == [f"key of session:{kept.id}"]
    async with db.transaction() as conn:
        assert await e2e_model.advance_epoch(conn, user.id, 1)
        assert not await e2e_model.advance_epoch(conn, user.id, 1)  # the optimistic check
    account = await e2e_model.select_account(db.reader, user.id)
    assert (account.epoch, account.rotation_needed) == (2, False)


async def test_settling_an_account_without_encryption_does_nothing(db):
    async with db.transaction() as conn:
        user = await users_model.insert_user(conn, "bob", "hash")
        assert await e2e_model.settle_revoked(conn, user.id) is None
    assert await e2e_model.select_account(db.reader, user.id) is None
