"""models/uploads.py's lease and the S3 partials' columns, on both engines."""
from __future__ import annotations

import asyncio
import time

from server.models import uploads as uploads_model
from tests.models.conftest import add_user

FAR = time.time() + 3600


async def add_upload(db, user_id, public_id="ab" * 16, multipart_id="mp-1", stored_name="s-tus"):
    return await db.write(uploads_model.insert_upload, user_id, public_id, 100, "a.bin", "application/octet-stream",
                          "buffer", None, None, None, "", None, None, time.time(), FAR, multipart_id, stored_name)


async def test_one_lease_at_a_time_and_an_expired_one_is_taken_over(db):
    user = await add_user(db)
    upload = await add_upload(db, user.id)
    assert (upload.multipart_id, upload.stored_name, upload.parts) == ("mp-1", "s-tus", None)
    now = time.time()
    # Racing takers (two hosts): exactly one wins.
    won = await asyncio.gather(*(db.write(uploads_model.take_lease, upload.public_id, f"t{n}", now, now + 30)
                                 for n in range(4)))
    assert won.count(True) == 1
    holder = f"t{won.index(True)}"
    assert await db.read(uploads_model.select_partial_state, upload.public_id) == (False, True)
    # Only the holder moves the offset, and its parts with it.
    assert not await db.write(uploads_model.update_offset, upload.id, 0, 10, "other", "[]")
    assert await db.write(uploads_model.update_offset, upload.id, 0, 10, holder, '[[1,"e"]]')
    assert await db.write(uploads_model.refresh_lease, upload.public_id, holder, now + 30)
    assert not await db.write(uploads_model.refresh_lease, upload.public_id, "other", now + 30)
    # A dead host's lease expires.
    assert await db.write(uploads_model.take_lease, upload.public_id, "late", now + 31, now + 61)
    assert not await db.write(uploads_model.update_offset, upload.id, 10, 20, holder, "[]")
    await db.write(uploads_model.release_lease, upload.public_id, holder)  # no longer its lease: a no-op
    assert await db.read(uploads_model.select_partial_state, upload.public_id) == (False, True)
    await db.write(uploads_model.release_lease, upload.public_id, "late")
    assert await db.write(uploads_model.take_lease, upload.public_id, "next", now, now + 30)
    row = await db.read(uploads_model.select_upload, user.id, upload.public_id, time.time())
    assert (row.offset, row.parts) == (10, '[[1,"e"]]')


async def test_what_the_sweeper_asks_about_s3_partials(db):
    user = await add_user(db)
    upload = await add_upload(db, user.id)
    assert await db.read(uploads_model.select_unfinished_multipart_ids, ["mp-1", "mp-2"]) == {"mp-1"}
    assert await db.read(uploads_model.select_unfinished_offsets, [upload.public_id, "cd" * 16]) == {
        upload.public_id: 0}
    assert await db.read(uploads_model.select_unfinished_stored_names, ["s-tus", "x"]) == {"s-tus"}
    refs = await db.write(uploads_model.delete_expired_batch, FAR + 1, 10)
    assert refs == [uploads_model.PartialRef(upload.public_id, False, "mp-1", "s-tus")]
