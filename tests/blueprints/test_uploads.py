"""Resumable uploads (tus 1.0.0) at /file/uploads, handler by handler."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

import pytest

from server.services import services
from tests.blueprints.test_account import error_of
from tests.blueprints.test_files import dump
from tests.helpers import stored_files

TUS = {"Tus-Resumable": "1.0.0", "Accept": "application/json"}
STREAM = {"Content-Type": "application/offset+octet-stream"}
MiB = 1024 * 1024


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


async def create(client, length: int, body: bytes | None = None, status: int = 201, **meta) -> str:
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(**(meta or {"filename": "a.bin"}))}
    if body is not None:
        headers.update(STREAM)
    response = await client.post("/file/uploads", data=body or b"", headers=headers)
    assert response.status_code == status, await response.get_data(as_text=True)
    return response.headers.get("Location", "").removeprefix("http://localhost")


async def patch(client, url: str, offset: int, data: bytes, **headers):
    return await client.patch(url, data=data, headers={**TUS, **STREAM, "Upload-Offset": str(offset), **headers})


async def offset_of(client, url: str) -> int:
    response = await client.head(url, headers=TUS)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


async def test_options_advertises_the_protocol(client, app):
    response = await client.options("/file/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration", "checksum"}
    assert int(response.headers["Tus-Max-Size"]) == services(app).settings.max_upload_bytes
    assert response.headers["Tus-Checksum-Algorithm"] == "sha256"


async def test_an_upload_in_pieces_becomes_the_buffer(alice):
    data = bytes(range(256)) * 40
    url = await create(alice, len(data), filename="notes.bin", filetype="application/x-thing")
    assert url.startswith("/file/uploads/")
    head = await alice.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Tus-Resumable"] == "1.0.0" and head.headers["Upload-Expires"].endswith("GMT")
    assert (await alice.get("/file/buffer")).status_code == 204  # nothing until the last byte
    first = await patch(alice, url, 0, data[:4000])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "4000"
    last = await patch(alice, url, 4000, data[4000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    buffered = await alice.get("/file/buffer")
    assert await buffered.get_data() == data
    assert 'filename="notes.bin"' in buffered.headers["Content-Disposition"]
    assert buffered.headers["Content-Type"] == "application/x-thing"
    state = await (await alice.get(url)).get_json()
    assert state["finished"] is True and state["item"]["id"] == int(last.headers["X-Item-Id"])
    # Its bytes are a stored file now, not a partial one.
    assert list((services(alice.app).settings.data_dir / "uploads").iterdir()) == []


async def test_creation_with_upload_and_a_share_target(alice):
    data = b"the whole file at once"
    url = await create(alice, len(data), body=data, filename="r.txt", target="share",
                       expires_in="3600")
    state = await (await alice.get(url)).get_json()
    assert state["finished"] and state["share"]["filename"] == "r.txt"
    assert 3590 < state["share"]["expires_at"] - time.time() <= 3600
    got = await alice.get(f"/file/get?token={state['share']['token']}&download=1")
    assert await got.get_data() == data
    assert (await alice.get("/file/buffer")).status_code == 204  # a link, not a buffer item


async def test_a_zero_length_upload_finishes_at_creation(alice):
    url = await create(alice, 0, filename="empty.txt")
    assert (await (await alice.get(url)).get_json())["finished"]
    assert await (await alice.get("/file/buffer")).get_data() == b""


async def test_a_wrong_offset_is_409_and_changes_nothing(alice):
    url = await create(alice, 10)
    await patch(alice, url, 0, b"12345")
    message = await error_of(await patch(alice, url, 3, b"xx"), 409, "offset_mismatch")
    assert "5" in message
    await error_of(await patch(alice, url, 7, b"xx"), 409, "offset_mismatch")
    assert await offset_of(alice, url) == 5


async def test_two_patches_at_once_one_is_409_never_interleaved(alice, app):
    url = await create(alice, 2 * MiB)
    partial = services(app).settings.data_dir / "uploads" / (url[-32:] + ".part")
    async with alice.request(url, method="PATCH", headers={**TUS, **STREAM, "Upload-Offset": "0"}) as first:
        await first.send(b"a" * MiB)
        for _ in range(500):  # until the first PATCH holds the upload and has written its first half
            if partial.stat().st_size >= MiB:
                break
            await asyncio.sleep(0.01)
        assert partial.stat().st_size == MiB
        await error_of(await patch(alice, url, 0, b"b" * 1024), 409, "upload_busy")
        await error_of(await patch(alice, url, MiB, b"b" * 1024), 409, "upload_busy")
        await error_of(await alice.delete(url, headers=TUS), 409, "upload_busy")
        await first.send(b"a" * MiB)
        await first.send_complete()
    response = await first.as_response()
    assert response.status_code == 204, await response.get_data(as_text=True)
    assert await (await alice.get("/file/buffer")).get_data() == b"a" * 2 * MiB


async def test_a_patch_cut_off_keeps_what_arrived(alice, app):
    url = await create(alice, 3 * MiB)
    async with alice.request(url, method="PATCH", headers={**TUS, **STREAM, "Upload-Offset": "0"}) as cut:
        await cut.send(b"c" * (MiB + 5))
        await asyncio.sleep(0.2)
        await cut.disconnect()
    for _ in range(200):
        if await offset_of(alice, url) > 0:
            break
        await asyncio.sleep(0.01)
    assert await offset_of(alice, url) == MiB + 5
    assert (await patch(alice, url, MiB + 5, b"d" * (2 * MiB - 5))).status_code == 204
    assert await (await alice.get("/file/buffer")).get_data() == b"c" * (MiB + 5) + b"d" * (2 * MiB - 5)


async def test_checksum_mismatch_is_460_and_keeps_nothing(alice):
    url = await create(alice, 8)
    good = "sha256 " + base64.b64encode(hashlib.sha256(b"1234").digest()).decode()
    await error_of(await patch(alice, url, 0, b"abcd", **{"Upload-Checksum": good}), 460, "checksum_mismatch")
    assert await offset_of(alice, url) == 0
    assert (await patch(alice, url, 0, b"1234", **{"Upload-Checksum": good})).status_code == 204
    await error_of(await patch(alice, url, 4, b"5678", **{"Upload-Checksum": "md5 xyz"}), 400,
                   "unsupported_checksum")
    assert await offset_of(alice, url) == 4


@pytest.fixture
def settings(tmp_path):
    return {"DATA_DIR": str(tmp_path / "data"), "QUOTA_BYTES": 3 * MiB, "MAX_UPLOAD_BYTES": 4 * MiB}


async def test_an_unfinished_upload_counts_against_the_quota(alice, app):
    await error_of(await alice.post("/file/uploads", headers={
        **TUS, "Upload-Length": str(4 * MiB + 1), "Upload-Metadata": metadata(filename="x")}), 413, "too_large")
    url = await create(alice, 2 * MiB)
    before = await dump(app)
    await error_of(await alice.post("/file/uploads", headers={
        **TUS, "Upload-Length": str(MiB + 1), "Upload-Metadata": metadata(filename="y")}), 413, "quota_exceeded")
    response = await alice.post("/file/buffer", data=b"z" * (MiB + 1),
                                headers={"X-Data-Type": "file", "X-File-Name": "z.bin"})
    await error_of(response, 413, "quota_exceeded")
    assert await dump(app) == before
    assert sorted(p.name for p in (services(app).settings.data_dir / "uploads").iterdir()) == [url[-32:] + ".part"]
    # Finishing moves the reservation onto the file, without counting it twice.
    assert (await patch(alice, url, 0, b"q" * 2 * MiB)).status_code == 204
    assert await create(alice, MiB)
    await error_of(await alice.post("/file/uploads", headers={
        **TUS, "Upload-Length": "1", "Upload-Metadata": metadata(filename="y")}), 413, "quota_exceeded")


async def test_termination(alice, app):
    url = await create(alice, 100)
    await patch(alice, url, 0, b"x" * 10)
    response = await alice.delete(url, headers=TUS)
    assert response.status_code == 204
    assert (await alice.head(url, headers=TUS)).status_code == 404
    await error_of(await alice.get(url), 404, "not_found")
    await error_of(await patch(alice, url, 10, b"x"), 404, "not_found")
    assert list((services(app).settings.data_dir / "uploads").iterdir()) == []


async def test_protocol_refusals(alice):
    await error_of(await alice.post("/file/uploads", headers={"Upload-Length": "5", "Accept": "application/json"}),
                   412, "unsupported_version")
    await error_of(await alice.post("/file/uploads", headers={**TUS, "Upload-Metadata": metadata(filename="a")}),
                   400, "invalid_upload_length")
    await error_of(await alice.post("/file/uploads", headers={**TUS, "Upload-Length": "5"}), 400, "missing_filename")
    await error_of(await alice.post("/file/uploads", headers={**TUS, "Upload-Length": "5",
                                                              "Upload-Metadata": "filename !!!"}),
                   400, "invalid_metadata")
    await error_of(await alice.post("/file/uploads", headers={
        **TUS, "Upload-Length": "5", "Upload-Metadata": metadata(filename="a", target="nowhere")}),
        400, "invalid_target")
    url = await create(alice, 5)
    await error_of(await alice.patch(url, data=b"x", headers={**TUS, "Upload-Offset": "0"}), 415,
                   "unsupported_media_type")
    await error_of(await patch(alice, url, 0, b"123456"), 413, "too_large")
    assert await offset_of(alice, url) == 0
    await error_of(await alice.get("/file/uploads/" + "0" * 32), 404, "not_found")
    await error_of(await alice.get("/file/uploads/nothex"), 404, "not_found")


async def test_another_users_upload_is_not_found(app, alice):
    url = await create(alice, 10)
    other = app.test_client()
    response = await other.post("/account/register", json={"username": "bob", "password": "correct horse battery"})
    assert response.status_code == 201
    await error_of(await other.get(url), 404, "not_found")
    await error_of(await patch(other, url, 0, b"x"), 404, "not_found")
    await error_of(await other.delete(url, headers=TUS), 404, "not_found")
    assert await offset_of(alice, url) == 0


async def test_the_sweeper_removes_an_expired_partial_upload(alice, app):
    from server import resumable
    from server.sweeper import sweep_once

    url = await create(alice, 100)
    await patch(alice, url, 0, b"x" * 50)
    registry = services(app)
    partial_dir = registry.settings.data_dir / "uploads"
    assert len(list(partial_dir.iterdir())) == 1
    result = await sweep_once(registry.db, registry.storage, 60)
    assert result["uploads"] == 0 and len(list(partial_dir.iterdir())) == 1  # not expired yet
    later = time.time() + registry.settings.upload_expire_seconds + 1
    result = await resumable.sweep(registry.db, resumable.PartialStore(partial_dir), later)
    assert result["uploads"] == 1
    assert list(partial_dir.iterdir()) == []
    await error_of(await alice.get(url), 404, "not_found")
    assert stored_files(registry.settings.data_dir) == []


async def test_a_leftover_partial_file_without_a_row_is_swept(alice, app):
    from server import resumable

    registry = services(app)
    partial_dir = registry.settings.data_dir / "uploads"
    store = resumable.PartialStore(partial_dir)
    await store.create("ab" * 16)
    result = await resumable.sweep(registry.db, store, time.time())
    assert result["partial_files"] == 0  # too young to judge: its row may be committing
    result = await resumable.sweep(registry.db, store, time.time() + resumable.LEFTOVER_GRACE_SECONDS + 1)
    assert result["partial_files"] == 1 and list(partial_dir.iterdir()) == []


async def test_cookie_writes_from_another_site_are_refused(alice):
    url = await create(alice, 10)
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    await error_of(await alice.post("/file/uploads", headers={
        **TUS, **evil, "Upload-Length": "5", "Upload-Metadata": metadata(filename="x")}), 403, "cross_origin")
    await error_of(await patch(alice, url, 0, b"x", **evil), 403, "cross_origin")
    await error_of(await alice.delete(url, headers={**TUS, **evil}), 403, "cross_origin")
    assert await offset_of(alice, url) == 0


async def test_a_finish_refused_meanwhile_can_be_retried(app, alice):
    settings_max = services(app).settings.max_shares
    url = await create(alice, 4, filename="s.txt", target="share")
    for n in range(settings_max):  # the link limit is reached while the upload is under way
        assert (await create(alice, 1, body=b"x", filename=f"{n}.txt", target="share"))
    await error_of(await patch(alice, url, 0, b"abcd"), 409, "too_many_links")
    assert await offset_of(alice, url) == 4  # whole, waiting
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    first = profile["shares"][0]["id"]
    assert (await alice.delete(f"/account/shares/{first}", headers={"Accept": "application/json"})).status_code == 200
    done = await patch(alice, url, 4, b"")
    assert done.status_code == 204 and "X-Share-Url" in done.headers
    again = await patch(alice, url, 4, b"")  # a client that missed that answer
    assert again.status_code == 204 and again.headers["X-Share-Url"] == done.headers["X-Share-Url"]


async def test_a_resumable_upload_to_the_buffer_is_pushed_to_the_devices(app, alice):
    async with services(app).broker.subscribe(1) as events:
        await create(alice, 3, body=b"abc", filename="p.txt")
        message = json.loads(await asyncio.wait_for(events.__anext__(), 5))
    assert message["type"] == "buffer" and message["filename"] == "p.txt" and message["size"] == 3


async def test_on_an_encrypted_account_tus_carries_the_blobs_and_plaintext_is_refused(client, app):
    from tests.blueprints.test_e2e import enabled

    account, _ = await enabled(client)
    await error_of(await client.post("/file/uploads", headers={
        **TUS, "Upload-Length": "5", "Upload-Metadata": metadata(filename="plain.txt")}), 409, "encrypted_account")
    assert list((services(app).settings.data_dir / "uploads").iterdir()) == []
    item = account.item(b"a big secret file" * 1000, kind="file", name="secret.bin")
    url = await create(client, len(item.body), encrypted="aes128gcm", key=item.key, meta=item.meta)
    half = len(item.body) // 2
    assert (await patch(client, url, 0, item.body[:half])).status_code == 204
    assert (await patch(client, url, half, item.body[half:])).status_code == 204
    got = await client.get("/file/buffer")
    assert await got.get_data() == item.body
    assert (got.headers["X-Encrypted"], got.headers["X-Encrypted-Key"]) == ("aes128gcm", item.key)
    assert got.headers["X-Encrypted-Meta"] == item.meta
    state = await (await client.get(url)).get_json()
    assert state["item"]["encrypted"] == "aes128gcm" and "filename" not in state["item"]
