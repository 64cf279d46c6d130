"""files and shares: expiry in every read, the cap, hashing, sweeper batches."""
from __future__ import annotations

import hashlib

from server.models import files as files_model
from server.models import items as items_model
from tests.models.conftest import add_user

FAR = 9e12


async def add_file(db, user_id, name, *, size=10, expires_at=FAR, stored_name=None):
    return await db.write(files_model.insert_file, user_id, stored_name or name.replace(".", "_") + "_stored",
                          name, "text/plain", size, expires_at)


async def add_share(db, user_id, file_id, token, expires_at=FAR):
    return (await db.write(files_model.insert_share, user_id, file_id, token, b"nonce", expires_at)).id


async def add_item_of(db, user_id, stored):
    return await db.write(items_model.insert_item, user_id, kind="file", file_id=stored.id, size=10,
                          device_name="x", created_at=1, expires_at=FAR)


async def test_select_file_checks_owner_and_expiry(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    stored = await add_file(db, alice.id, "a.txt", expires_at=500.0)
    assert await db.read(files_model.select_file, alice.id, stored.id, 100.0) == stored
    assert await db.read(files_model.select_file, bob.id, stored.id, 100.0) is None
    assert await db.read(files_model.select_file, alice.id, stored.id, 500.0) is None


async def test_used_bytes_counts_only_live_files(db):
    user = await add_user(db)
    assert await db.read(files_model.select_used_bytes, user.id, 100.0) == 0
    await add_file(db, user.id, "a", size=100)
    await add_file(db, user.id, "b", size=50, expires_at=200.0)
    assert await db.read(files_model.select_used_bytes, user.id, 100.0) == 150
    assert await db.read(files_model.select_used_bytes, user.id, 300.0) == 100


async def add_file_item(db, user_id, name):
    stored = await add_file(db, user_id, name)
    await add_item_of(db, user_id, stored)
    return stored


async def test_cap_counts_buffer_files_only_and_spares_shared_ones(db):
    user, other = await add_user(db, "alice"), await add_user(db, "bob")
    files = [await add_file_item(db, user.id, f"f{n}") for n in range(4)]
    await add_share(db, user.id, files[0].id, "keeps-f0")
    loaded = await add_file(db, user.id, "loaded")  # a /file/load file: a link, no item
    await add_share(db, user.id, loaded.id, "loaded-link")
    await add_file_item(db, other.id, "bobs")
    def trim(conn):
        return (files_model.delete_items_of_files_over_cap(conn, user.id, 2),
                files_model.delete_unreferenced_files(conn, user.id))

    trimmed, removed = await db.write(trim)
    assert trimmed == 2
    # f0 and f1 left the history; f1 had no link and left the disk, f0 stays for its link.
    assert removed == [files[1].stored_name]
    assert {s.file.filename for s in await db.read(files_model.select_shares, user.id, 0)} == {"f0", "loaded"}
    assert [item.filename for item in await db.read(items_model.select_items, user.id, 0, 10)] == ["f3", "f2"]
    assert await db.read(files_model.select_stored_names, ["bobs_stored"]) == {"bobs_stored"}


async def test_a_reusable_share_is_the_live_one_with_a_nonce_and_most_time_left(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt")
    def add_shares(conn):
        files_model.insert_share(conn, user.id, stored.id, "short", b"n1", 500.0)
        longest = files_model.insert_share(conn, user.id, stored.id, "long", b"n2", 900.0)
        conn.run("INSERT INTO shares (user_id, file_id, token_hash, created_at, expires_at)"
                 " VALUES (?, ?, ?, 0, 2000)", (user.id, stored.id, b"\x00"))  # from before migration 2
        return longest

    longest = await db.write(add_shares)
    found = await db.read(files_model.select_reusable_shares, user.id, stored.id, 100.0)
    assert [(share.id, share.nonce) for share in found][0] == (longest.id, b"n2") and len(found) == 2
    assert await db.read(files_model.select_reusable_shares, user.id, stored.id, 900.0) == []
    assert await db.read(files_model.count_live_shares, user.id, 100.0) == 3
    assert await db.read(files_model.count_live_shares, user.id, 600.0) == 2


async def test_shares_are_found_by_token_stored_hashed_and_expire(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=1000.0)
    share_id = await add_share(db, user.id, stored.id, "the-share-token", expires_at=500.0)
    share = await db.read(files_model.select_share_by_token, "the-share-token", 100.0)
    assert share.id == share_id and share.file == stored and share.expires_at == 500.0
    assert await db.read(files_model.select_share_by_token, "other-token", 100.0) is None
    assert await db.read(files_model.select_share_by_token, "the-share-token", 500.0) is None
    assert await db.read(lambda conn: conn.value("SELECT token_hash FROM shares")) == \
        hashlib.sha256(b"the-share-token").digest()


async def test_a_share_dies_with_its_file(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=300.0)
    await add_share(db, user.id, stored.id, "tok", expires_at=1000.0)
    assert await db.read(files_model.select_share_by_token, "tok", 299.0) is not None
    assert await db.read(files_model.select_share_by_token, "tok", 300.0) is None
    assert await db.read(files_model.select_shares, user.id, 300.0) == []


async def test_select_and_delete_shares(db):
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    stored = await add_file(db, alice.id, "a.txt")
    first = await add_share(db, alice.id, stored.id, "t1")
    second = await add_share(db, alice.id, stored.id, "t2")
    assert {s.id for s in await db.read(files_model.select_shares, alice.id, 0)} == {first, second}
    assert await db.read(files_model.select_shares, bob.id, 0) == []
    assert not await db.write(files_model.delete_share, bob.id, first)
    assert await db.write(files_model.delete_share, alice.id, first)
    assert [s.id for s in await db.read(files_model.select_shares, alice.id, 0)] == [second]


async def test_extend_file_expiry_never_shortens(db):
    user = await add_user(db)
    stored = await add_file(db, user.id, "a.txt", expires_at=500.0)
    await db.write(files_model.extend_file_expiry, stored.id, 400.0)
    assert await db.read(files_model.select_file, user.id, stored.id, 450.0) is not None
    await db.write(files_model.extend_file_expiry, stored.id, 900.0)
    assert await db.read(files_model.select_file, user.id, stored.id, 800.0) is not None


async def test_unreferenced_files_are_deleted(db):
    user = await add_user(db)
    in_history = await add_file(db, user.id, "item.txt")
    shared = await add_file(db, user.id, "share.txt")
    loose = await add_file(db, user.id, "loose.txt")
    def refer_then_delete(conn):
        items_model.insert_item(conn, user.id, kind="file", file_id=in_history.id, size=10,
                                device_name="x", created_at=1, expires_at=FAR)
        files_model.insert_share(conn, user.id, shared.id, "tok", b"nonce", FAR)
        return files_model.delete_unreferenced_files(conn, user.id)

    assert await db.write(refer_then_delete) == [loose.stored_name]
    assert await db.read(files_model.select_user_stored_names, user.id) == [in_history.stored_name,
                                                                                shared.stored_name]


async def test_expired_rows_are_deleted_in_batches(db):
    user = await add_user(db)
    live = await add_file(db, user.id, "live.txt")
    await add_item_of(db, user.id, live)
    expired = []
    for n in range(5):
        stored = await add_file(db, user.id, f"old{n}.txt", expires_at=50.0)
        await add_share(db, user.id, stored.id, f"tok{n}", expires_at=50.0)
        expired.append(stored.stored_name)

    removed, deleted = [], 0
    for _ in range(10):
        count, names = await db.write(files_model.delete_expired_batch, 100.0, 2)
        assert len(names) <= 2
        removed += names
        deleted += count
        if count == 0:
            break
    assert sorted(removed) == sorted(expired)
    assert deleted == 10  # five shares and five files
    assert await db.read(files_model.select_user_stored_names, user.id) == [live.stored_name]


async def test_select_stored_names_handles_many_names(db):
    user = await add_user(db)
    known = [(await add_file(db, user.id, f"f{n}", stored_name=f"name{n}")).stored_name for n in range(3)]
    candidates = known + [f"unknown{n}" for n in range(1200)]  # more than one IN (…) chunk
    assert await db.read(files_model.select_stored_names, candidates) == set(known)
