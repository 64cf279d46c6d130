"""items: the history; the newest unexpired item is the buffer."""
from __future__ import annotations

from server.models import files as files_model
from server.models import items as items_model
from server.models import users as users_model
from tests.models.conftest import add_user

FAR = 9e12


async def add_text(db, user_id, text, *, expires_at=FAR, created_at=1.0):
    return await db.write(items_model.insert_item, user_id, kind="text", text=text, size=len(text.encode()),
                          device_name="laptop", created_at=created_at, expires_at=expires_at)


async def test_insert_bumps_the_users_seq(db):
    user = await add_user(db)
    first = await add_text(db, user.id, "one")
    second = await add_text(db, user.id, "two")
    assert (first.seq, second.seq) == (1, 2)
    assert await db.read(users_model.select_user_seq, user.id) == 2
    assert second.kind == "text" and second.text == "two" and second.filename is None
    assert second.mime == "text/plain; charset=utf-8"


async def test_current_item_is_the_newest_unexpired(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    assert await db.read(items_model.select_current_item, user.id, 100.0) is None
    older = await add_text(db, user.id, "older", expires_at=1000.0)
    await add_text(db, user.id, "newer", expires_at=200.0)
    await add_text(db, other.id, "bob's")
    assert (await db.read(items_model.select_current_item, user.id, 100.0)).text == "newer"
    # Once the newest expires, what is left is the buffer …
    assert (await db.read(items_model.select_current_item, user.id, 200.0)) == older
    # … and nothing once everything has.
    assert await db.read(items_model.select_current_item, user.id, 1000.0) is None


async def test_select_item_is_per_user_and_filters_expiry(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    item = await add_text(db, alice.id, "mine", expires_at=500.0)
    assert await db.read(items_model.select_item, alice.id, item.id, 100.0) == item
    assert await db.read(items_model.select_item, bob.id, item.id, 100.0) is None
    assert await db.read(items_model.select_item, alice.id, item.id, 500.0) is None


async def test_select_items_newest_first_with_a_limit(db):
    user = await add_user(db)
    for n in range(5):
        await add_text(db, user.id, f"t{n}", expires_at=FAR if n != 3 else 50.0)
    items = await db.read(items_model.select_items, user.id, 100.0, 3)
    assert [i.text for i in items] == ["t4", "t2", "t1"]


async def test_search_folds_case_and_takes_like_wildcards_literally(db):
    user = await add_user(db)
    for text in ("ÉTÉ à Paris", "100% sure", "1000 sure", "snake_case", "snakeXcase", "back\\slash"):
        await add_text(db, user.id, text)

    async def found(query):
        return [i.text for i in await db.read(items_model.select_items, user.id, 0, 20, query=query)]

    assert await found("été") == ["ÉTÉ à Paris"]
    assert await found("0%") == ["100% sure"]
    assert await found("e_c") == ["snake_case"]
    assert await found("k\\s") == ["back\\slash"]
    assert await found("nothing") == []


async def test_delete_items_beyond_keeps_the_newest(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    for n in range(5):
        await add_text(db, user.id, f"t{n}")
    await add_text(db, other.id, "untouched")
    assert await db.write(items_model.delete_items_beyond, user.id, 2) == 3
    assert await db.write(items_model.delete_items_beyond, user.id, 2) == 0
    assert [i.text for i in await db.read(items_model.select_items, user.id, 0, 10)] == ["t4", "t3"]
    assert len(await db.read(items_model.select_items, other.id, 0, 10)) == 1


async def test_delete_item(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    item = await add_text(db, alice.id, "x")
    assert not await db.write(items_model.delete_item, bob.id, item.id)
    assert await db.write(items_model.delete_item, alice.id, item.id)
    assert not await db.write(items_model.delete_item, alice.id, item.id)


async def test_file_items_carry_the_files_name_and_type(db):
    user = await add_user(db)

    def add_file_item(conn):
        stored = files_model.insert_file(conn, user.id, "f" * 32, "photo.jpg", "image/jpeg", 1234, FAR)
        return stored, items_model.insert_item(conn, user.id, kind="file", file_id=stored.id, size=1234,
                                               device_name="phone", created_at=1.0, expires_at=FAR)

    stored, item = await db.write(add_file_item)
    assert (item.kind, item.filename, item.mime, item.stored_name, item.size) == (
        "file", "photo.jpg", "image/jpeg", "f" * 32, 1234)
    # Deleting the file takes its item with it.
    await db.write(files_model.delete_files_by_id, [stored.id])
    assert await db.read(items_model.select_item, user.id, item.id, 0) is None
