"""files and shares: expiry in every read, the cap, hashing, sweeper batches."""
from __future__ import annotations

import hashlib

from server.models import files as files_model
from server.models import items as items_model
from tests.models.conftest import add_user

FAR = 9e12


async def add_file(db, user_id, name, *, size=10, expires_at=FAR, stored_name=None):
    async with db.transaction() as conn:
        return await files_model.insert_file(conn, user_id, stored_name or name.replace(".", "_") + "_stored",
                                             name, "text/plain", size, expires_at)


async def add_share(db, user_id, file_id, token, expires_at=FAR):
    async with db.transaction() as conn:
        return (await files_model.insert_share(conn, user_id, file_id, token, b"nonce", expires_at)).id


async def test_select_file_checks_owner_and_expiry(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    stored = await add_file(db, alice.id, "a.txt", expires_at=500.0)
    assert await files_model.select_file(db.reader, alice.id, stored.id, 100.0) == stored
    assert await files_model.select_file(db.reader, bob.id, stored.id, 100.0) is None
    assert await files_model.select_file(db.reader, alice.id, stored.id, 500.0) is None


async def test_used_bytes_counts_only_live_files(db):
    user = await add_user(db)
    assert await files_model.select_used_bytes(db.reader, user.id, 100.0) == 0
    await add_file(db, user.id, "a", size=100)
    await add_file(db, user.id, "b", size=50, expires_at=200.0)
    assert await files_model.select_used_bytes(db.reader, user.id, 100.0) == 150
    assert await files_model.select_used_bytes(db.reader, user.id, 300.0) == 100


async def add_file_item(db, user_id, name):
    stored = await add_file(db, user_id, name)
    async with db.transaction() as conn:
        await items_model.insert_item(conn, user_id, kind="file", file_id=stored.id, size=10,
                                      device_name="x", created_at=1, expires_at=FAR)
    return stored


async def test_cap_counts_buffer_files_only_and_spares_shared_ones(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    files = [await add_file_item(db, user.id, f"f{n}") for n in range(4)]
    await add_share(db, user.id, files[0].id, "keeps-f0")
    loaded = await add_file(db, user.id, "loaded")  # a /file/load file: a link, no item
    await add_share(db, user.id, loaded.id, "loaded-link")
    await add_file_item(db, other.id, "bobs")
    async with db.transaction() as conn:
        assert await files_model.delete_items_of_files_over_cap(conn, user.id, 2) == 2
        removed = await files_model.delete_unreferenced_files(conn, user.id)
    # f0 and f1 left the history; f1 had no link and left the disk, f0 stays for its link.
    assert removed == [files[1].stored_name]
    assert {s.file.filename for s in await files_model.select_shares(db.reader, user.id, 0)} == {"f0", "loaded"}
    assert [item.filename for item in await items_model.select_items(db.reader, user.id, 0, 10)] == ["f3", "f2"]
    assert await files_model.select_stored_names(db.reader, ["bobs_stored"]) == {"bobs_stored"}


async def test_a_reusable_share_is_the_live_one_with_a_nonce_and_most_time_left(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt")
    async with db.transaction() as conn:
        await files_model.insert_share(conn, user.id, stored.id, "short", b"n1", 500.0)
        longest = await files_model.insert_share(conn, user.id, stored.id, "long", b"n2", 900.0)
        await conn.execute("INSERT INTO shares (user_id, file_id, token_hash, created_at, expires_at)"
                           " VALUES (?, ?, x'00', 0, 2000)", (user.id, stored.id))  # from before migration 2
    found = await files_model.select_reusable_shares(db.reader, user.id, stored.id, 100.0)
    assert [(share.id, share.nonce) for share in found][0] == (longest.id, b"n2") and len(found) == 2
    assert await files_model.select_reusable_shares(db.reader, user.id, stored.id, 900.0) == []
    assert await files_model.count_live_shares(db.reader, user.id, 100.0) == 3
    assert await files_model.count_live_shares(db.reader, user.id, 600.0) == 2


async def test_shares_are_found_by_token_stored_hashed_and_expire(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=1000.0)
    share_id = await add_share(db, user.id, stored.id, "the-share-token", expires_at=500.0)
    share = await files_model.select_share_by_token(db.reader, "the-share-token", 100.0)
    assert share.id == share_id and share.file == stored and share.expires_at == 500.0
    assert await files_model.select_share_by_token(db.reader, "other-token", 100.0) is None
    assert await files_model.select_share_by_token(db.reader, "the-share-token", 500.0) is None
    async with db.reader.execute("SELECT token_hash FROM shares") as cursor:
        assert (await cursor.fetchone())[0] == hashlib.sha256(b"the-share-token").digest()


async def test_a_share_dies_with_its_file(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=300.0)
    await add_share(db, user.id, stored.id, "tok", expires_at=1000.0)
    assert await files_model.select_share_by_token(db.reader, "tok", 299.0) is not None
    assert await files_model.select_share_by_token(db.reader, "tok", 300.0) is None
    assert await files_model.select_shares(db.reader, user.id, 300.0) == []


async def test_select_and_delete_shares(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    stored = await add_file(db, alice.id, "a.txt")
    first = await add_share(db, alice.id, stored.id, "t1")
    second = await add_share(db, alice.id, stored.id, "t2")
    assert {s.id for s in await files_model.select_shares(db.reader, alice.id, 0)} == {first, second}
    assert await files_model.select_shares(db.reader, bob.id, 0) == []
    async with db.transaction() as conn:
        assert not await files_model.delete_share(conn, bob.id, first)
        assert await files_model.delete_share(conn, alice.id, first)
    assert [s.id for s in await files_model.select_shares(db.reader, alice.id, 0)] == [second]


async def test_extend_file_expiry_never_shortens(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=500.0)
    async with db.transaction() as conn:
        await files_model.extend_file_expiry(conn, stored.id, 400.0)
    assert await files_model.select_file(db.reader, user.id, stored.id, 450.0) is not None
    async with db.transaction() as conn:
        await files_model.extend_file_expiry(conn, stored.id, 900.0)
    assert await files_model.select_file(db.reader, user.id, stored.id, 800.0) is not None


async def test_unreferenced_files_are_deleted(db):
    user = await add_user(db)
    in_history = await add_file(db, user.id, "item.txt")
    shared = await add_file(db, user.id, "share.txt")
    loose = await add_file(db, user.id, "loose.txt")
    async with db.transaction() as conn:
        await items_model.insert_item(conn, user.id, kind="file", file_id=in_history.id, size=10,
                                      device_name="x", created_at=1, expires_at=FAR)
        await files_model.insert_share(conn, user.id, shared.id, "tok", b"nonce", FAR)
        assert await files_model.delete_unreferenced_files(conn, user.id) == [loose.stored_name]
    assert await files_model.select_user_stored_names(db.reader, user.id) == [in_history.stored_name,
                                                                                shared.stored_name]


async def test_expired_rows_are_deleted_in_batches(db):
    user = await add_user(db)
    live = await add_file(db, user.id, "live.txt")
    async with db.transaction() as conn:
        await items_model.insert_item(conn, user.id, kind="file", file_id=live.id, size=10,
                                      device_name="x", created_at=1, expires_at=FAR)
    expired = []
    for n in range(5):
        stored = await add_file(db, user.id, f"old{n}.txt", expires_at=50.0)
        await add_share(db, user.id, stored.id, f"tok{n}", expires_at=50.0)
        expired.append(stored.stored_name)

    removed, deleted = [], 0
    for _ in range(10):
        async with db.transaction() as conn:
            count, names = await files_model.delete_expired_batch(conn, 100.0, 2)
        assert len(names) <= 2
        removed += names
        deleted += count
        if count == 0:
            break
    assert sorted(removed) == sorted(expired)
    assert deleted == 10  # five shares and five files
    assert await files_model.select_user_stored_names(db.reader, user.id) == [live.stored_name]


async def test_select_stored_names_handles_many_names(db):
    user = await add_user(db)
    known = [(await add_file(db, user.id, f"f{n}", stored_name=f"name{n}")).stored_name for n in range(3)]
    candidates = known + [f"unknown{n}" for n in range(1200)]  # more than one IN (…) chunk
    assert await files_model.select_stored_names(db.reader, candidates) == set(known)
