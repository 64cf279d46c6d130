"""items: the history; the newest unexpired item is the buffer."""
from __future__ import annotations

from server.models import files as files_model
from server.models import items as items_model
from server.models import users as users_model
from tests.models.conftest import add_user

FAR = 9e12


async def add_text(db, user_id, text, *, expires_at=FAR, created_at=1.0):
    async with db.transaction() as conn:
        return await items_model.insert_item(conn, user_id, kind="text", text=text, size=len(text.encode()),
                                             device_name="laptop", created_at=created_at, expires_at=expires_at)


async def test_insert_bumps_the_users_seq(db):
    user = await add_user(db)
    first = await add_text(db, user.id, "one")
    second = await add_text(db, user.id, "two")
    assert (first.seq, second.seq) == (1, 2)
    assert await users_model.select_user_seq(db.reader, user.id) == 2
    assert second.kind == "text" and second.text == "two" and second.filename is None
    assert second.mime == "text/plain; charset=utf-8"


async def test_current_item_is_the_newest_unexpired(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    assert await items_model.select_current_item(db.reader, user.id, 100.0) is None
    older = await add_text(db, user.id, "older", expires_at=1000.0)
    await add_text(db, user.id, "newer", expires_at=200.0)
    await add_text(db, other.id, "bob's")
    assert (await items_model.select_current_item(db.reader, user.id, 100.0)).text == "newer"
    # Once the newest expires, what is left is the buffer …
    assert (await items_model.select_current_item(db.reader, user.id, 200.0)) == older
    # … and nothing once everything has.
    assert await items_model.select_current_item(db.reader, user.id, 1000.0) is None


async def test_select_item_is_per_user_and_filters_expiry(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    item = await add_text(db, alice.id, "mine", expires_at=500.0)
    assert await items_model.select_item(db.reader, alice.id, item.id, 100.0) == item
    assert await items_model.select_item(db.reader, bob.id, item.id, 100.0) is None
    assert await items_model.select_item(db.reader, alice.id, item.id, 500.0) is None


async def test_select_items_newest_first_with_a_limit(db):
    user = await add_user(db)
    for n in range(5):
        await add_text(db, user.id, f"t{n}", expires_at=FAR if n != 3 else 50.0)
    items = await items_model.select_items(db.reader, user.id, 100.0, 3)
    assert [i.text for i in items] == ["t4", "t2", "t1"]


async def test_delete_items_beyond_keeps_the_newest(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    for n in range(5):
        await add_text(db, user.id, f"t{n}")
    await add_text(db, other.id, "untouched")
    async with db.transaction() as conn:
        assert await items_model.delete_items_beyond(conn, user.id, 2) == 3
        assert await items_model.delete_items_beyond(conn, user.id, 2) == 0
    assert [i.text for i in await items_model.select_items(db.reader, user.id, 0, 10)] == ["t4", "t3"]
    assert len(await items_model.select_items(db.reader, other.id, 0, 10)) == 1


async def test_delete_item(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    item = await add_text(db, alice.id, "x")
    async with db.transaction() as conn:
        assert not await items_model.delete_item(conn, bob.id, item.id)
        assert await items_model.delete_item(conn, alice.id, item.id)
        assert not await items_model.delete_item(conn, alice.id, item.id)


async def test_file_items_carry_the_files_name_and_type(db):
    user = await add_user(db)
    async with db.transaction() as conn:
        stored = await files_model.insert_file(conn, user.id, "f" * 32, "photo.jpg", "image/jpeg", 1234, FAR)
        item = await items_model.insert_item(conn, user.id, kind="file", file_id=stored.id, size=1234,
                                             device_name="phone", created_at=1.0, expires_at=FAR)
    assert (item.kind, item.filename, item.mime, item.stored_name, item.size) == (
        "file", "photo.jpg", "image/jpeg", "f" * 32, 1234)
    # Deleting the file takes its item with it.
    async with db.transaction() as conn:
        await files_model.delete_files_by_id(conn, [stored.id])
    assert await items_model.select_item(db.reader, user.id, item.id, 0) is None
