"""Encrypted items on every write and read path (docs/e2e.md): /file/buffer,
its history, /file/load share links and /share-target, through Quart's test
client. Blobs are made by http_ece (tests/e2e_keys.py); the server only
checks their aes128gcm headers and must refuse anything else, and every
plaintext write, with the right 4xx."""
from __future__ import annotations

import os
import struct

import pytest

from server.services import services
from tests.blueprints.test_account import error_of
from tests.blueprints.test_e2e import enabled, register_user, rotation
from tests.conftest import PASSWORD
from tests.e2e_keys import Account, b64u, encrypt, headers
from tests.helpers import BROWSER_ACCEPT, multipart, stored_files, temp_files

RS = 65536


async def post(client, item, kind="text", path="/file/buffer", **extra):
    return await client.post(path, data=item.body, headers={**headers(item, kind), **extra})


async def test_an_encrypted_text_round_trips_as_ciphertext(client):
    account, _ = await enabled(client)
    item = account.item("a secret of alice".encode())
    response = await post(client, item)
    assert response.status_code == 201, await response.get_data(as_text=True)
    listed = await response.get_json()
    assert (listed["encrypted"], listed["key"], listed["meta"]) == ("aes128gcm", item.key, item.meta)
    assert listed["type"] == "text" and listed["size"] == len(item.body)
    assert "mime" not in listed and "filename" not in listed

    got = await client.get("/file/buffer")
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"] == 'attachment; filename="cloudbuffer.aes128gcm"'
    assert (got.headers["X-Encrypted"], got.headers["X-Data-Type"]) == ("aes128gcm", "text")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    body = await got.get_data()
    assert body == item.body
    key, meta, plaintext = account.open_item(got.headers["X-Encrypted-Key"], got.headers["X-Encrypted-Meta"], body)
    assert plaintext == b"a secret of alice" and key["id"] == item.id and meta["kind"] == "text"

    history = (await (await client.get("/file/buffer/items")).get_json())["items"]
    assert [(entry["key"], entry["meta"], entry["encrypted"]) for entry in history] == [(item.key, item.meta,
                                                                                         "aes128gcm")]
    by_id = await client.get(f"/file/buffer/items/{listed['id']}")
    assert await by_id.get_data() == item.body and by_id.headers["X-Encrypted-Key"] == item.key
    # Range over the ciphertext: the header alone.
    head = await client.get("/file/buffer", headers={"Range": "bytes=0-20"})
    assert head.status_code == 206 and await head.get_data() == item.body[:21]
    assert head.headers["Content-Range"] == f"bytes 0-20/{len(item.body)}"


async def test_an_encrypted_file_streams_in_and_its_records_can_be_ranged(client, settings):
    account, _ = await enabled(client)
    content = os.urandom(3 * RS)  # four records
    item = account.item(content, "file", name="holiday.jpg", mime="image/jpeg")
    response = await post(client, item, "file")
    assert response.status_code == 201, await response.get_data(as_text=True)
    item_id = (await response.get_json())["id"]
    assert len(stored_files(settings["DATA_DIR"])) == 1 and temp_files(settings["DATA_DIR"]) == []

    got = await client.get(f"/file/buffer/items/{item_id}")
    assert got.headers["X-Data-Type"] == "file" and got.headers["X-Encrypted-Meta"] == item.meta
    assert got.headers["Content-Disposition"] == 'attachment; filename="cloudbuffer.aes128gcm"'
    body = await got.get_data()
    _, meta, plaintext = account.open_item(item.key, item.meta, body)
    assert plaintext == content and meta["name"] == "holiday.jpg"
    # Plaintext byte 70000 is in record 1: ciphertext 21 + 65536 … 21 + 2 * 65536 - 1.
    start = 21 + (70000 // (RS - 17)) * RS
    ranged = await client.get(f"/file/buffer/items/{item_id}", headers={"Range": f"bytes={start}-{start + RS - 1}"})
    assert ranged.status_code == 206 and await ranged.get_data() == item.body[start:start + RS]


async def test_plaintext_writes_to_an_encrypted_account_are_409_and_name_the_cli(client, settings):
    await enabled(client)
    refusals = [
        await client.post("/file/buffer", data=b"plain words", headers={"X-Data-Type": "text"}),
        await client.post("/file/buffer", data=b"plain file", headers={"X-Data-Type": "file", "X-File-Name": "a.txt"}),
    ]
    body, content_type = multipart([("file", "a.txt", b"plain form")])
    refusals.append(await client.post("/file/buffer", data=body, headers={"X-Data-Type": "file",
                                                                          "Content-Type": content_type}))
    refusals.append(await client.post("/file/load", data=body, headers={"Content-Type": content_type,
                                                                        "Accept": "application/json"}))
    share, share_type = multipart([("text", "shared plain text")])
    refusals.append(await client.post("/share-target", data=share, headers={"Content-Type": share_type,
                                                                            "Accept": "application/json"}))
    for response in refusals:
        assert "cloudbuffer copy" in await error_of(response, 409, "encrypted_account")
    assert (await client.get("/file/buffer")).status_code == 204
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_a_browser_sharing_plaintext_to_an_encrypted_account_gets_a_page(client):
    await enabled(client)
    share, share_type = multipart([("text", "shared plain text")])
    response = await client.post("/share-target", data=share, headers={"Content-Type": share_type,
                                                                       "Accept": BROWSER_ACCEPT})
    assert response.status_code == 409 and response.mimetype == "text/html"
    assert "cloudbuffer copy" in await response.get_data(as_text=True)


async def test_an_encrypted_write_to_a_plaintext_account_is_409(client):
    user_id, _ = await register_user(client, "alice")
    item = Account(user_id).item(b"nobody enabled this")
    await error_of(await post(client, item), 409, "not_encrypted")
    await error_of(await post(client, item, "file"), 409, "not_encrypted")
    await error_of(await client.post("/file/load", data=item.body, headers=headers(item, "file", with_key=False)),
                   409, "not_encrypted")
    assert (await client.get("/file/buffer")).status_code == 204


async def test_a_key_blob_of_another_epoch_is_stale(client):
    account, device = await enabled(client)
    account.keys[2] = os.urandom(32)
    await error_of(await post(client, account.item(b"from the future", epoch=2)), 409, "stale_key")
    old = account.item(b"under epoch 1", epoch=1)
    assert (await post(client, old)).status_code == 201
    body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
    assert (await client.post("/account/e2e/epochs", json=body)).status_code == 200
    message = await error_of(await post(client, account.item(b"late", epoch=1)), 409, "stale_key")
    assert "2" in message
    assert (await post(client, account.item(b"current", epoch=2))).status_code == 201


def header(rs: int = RS, keyid: bytes = b"") -> bytes:
    return os.urandom(16) + struct.pack("!I", rs) + bytes([len(keyid)]) + keyid


@pytest.mark.parametrize("change", ["rs", "body_keyid", "meta_keyid", "key_no_epoch", "key_bad_epoch",
                                    "truncated", "short", "encoding", "meta_too_big", "not_b64u", "no_meta",
                                    "no_key", "second_record_cut"])
async def test_what_is_not_aes128gcm_is_400_and_nothing_is_stored(client, settings, change):
    account, _ = await enabled(client)
    item = account.item(b"x" * 100)
    extra: dict[str, str] = {}
    if change == "rs":
        item.body = encrypt(b"x" * 100, item.item_key)[:16] + struct.pack("!I", 4096) + item.body[20:]
    elif change == "body_keyid":
        item.body = http_ece_with_keyid(item.item_key, b"x", "1")
    elif change == "meta_keyid":
        item.meta = b64u(http_ece_with_keyid(item.item_key, b"{}", "1"))
    elif change == "key_no_epoch":
        item.key = b64u(http_ece_with_keyid(os.urandom(32), b"{}", ""))
    elif change == "key_bad_epoch":
        item.key = b64u(http_ece_with_keyid(os.urandom(32), b"{}", "01"))
    elif change == "truncated":
        item.body = item.body[:21 + 10]  # the last record cut below a tag
    elif change == "second_record_cut":
        item.body = encrypt(b"x" * (RS - 17) + b"y", item.item_key)[:-2]  # the 2nd record: 16 bytes
    elif change == "short":
        item.body = item.body[:15]
    elif change == "encoding":
        extra["X-Encrypted"] = "aesgcm"
    elif change == "meta_too_big":
        item.meta = b64u(encrypt(os.urandom(4700), item.item_key))
        assert len(item.meta) > 6144
    elif change == "not_b64u":
        item.meta = item.meta + "="
    elif change == "no_meta":
        extra["X-Encrypted-Meta"] = ""
    elif change == "no_key":
        extra["X-Encrypted-Key"] = ""
    for kind in ("text", "file"):
        await error_of(await post(client, item, kind, **extra), 400, "invalid_ciphertext")
    assert (await client.get("/file/buffer")).status_code == 204
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


def http_ece_with_keyid(key: bytes, data: bytes, keyid: str) -> bytes:
    return encrypt(data, key, keyid)


async def test_an_encrypted_body_as_a_form_is_400(client):
    account, _ = await enabled(client)
    item = account.item(b"in a form")
    body, content_type = multipart([("file", "x.bin", item.body)])
    await error_of(await client.post("/file/buffer", data=body,
                                     headers={**headers(item, "file"), "Content-Type": content_type}),
                   400, "invalid_ciphertext")


async def test_the_text_limit_is_on_the_plaintext_plus_the_overhead(client, app):
    account, _ = await enabled(client)
    limit = services(app).settings.max_text_bytes
    assert (await post(client, account.item(b"a" * limit))).status_code == 201
    await error_of(await post(client, account.item(b"a" * (limit + 1))), 413, "too_large")
    # The same bytes as a file are fine.
    assert (await post(client, account.item(b"a" * (limit + 1)), "file")).status_code == 201


async def test_an_empty_text_is_a_header_alone(client):
    account, _ = await enabled(client)
    item = account.item(b"")
    assert len(item.body) == 21  # http_ece writes no record for nothing
    assert (await post(client, item)).status_code == 201


async def test_search_of_an_encrypted_account_is_409_listing_is_not(client):
    account, _ = await enabled(client)
    await post(client, account.item(b"findable?"))
    await error_of(await client.get("/file/buffer/items?q=findable"), 409, "encrypted_account")
    assert len((await (await client.get("/file/buffer/items?kind=text")).get_json())["items"]) == 1


async def test_an_encrypted_share_link_serves_ciphertext_and_its_meta_without_a_key(client, app):
    account, _ = await enabled(client)
    item = account.item(os.urandom(1000), "file", name="report.pdf", mime="application/pdf")
    response = await client.post("/file/load", data=item.body, headers={**headers(item, "file", with_key=False),
                                                                        "Accept": "application/json"})
    assert response.status_code == 201, await response.get_data(as_text=True)
    token = (await response.get_json())["token"]
    got = await client.get(f"/file/get/{token}")
    assert await got.get_data() == item.body
    assert got.headers["X-Encrypted"] == "aes128gcm" and got.headers["X-Encrypted-Meta"] == item.meta
    assert "X-Encrypted-Key" not in got.headers
    assert got.headers["Content-Disposition"] == 'attachment; filename="cloudbuffer.aes128gcm"'
    page = await client.get(f"/file/get/{token}", headers={"Accept": BROWSER_ACCEPT})
    text = await page.get_data(as_text=True)
    assert page.status_code == 200 and "#k=" in text and "report.pdf" not in text
    # A share link of an encrypted account made from a plaintext form is refused (above); one
    # made from an encrypted history file serves it the same way.
    posted = await post(client, account.item(b"history file", "file"), "file")
    shared = await client.post(f"/file/buffer/items/{(await posted.get_json())['id']}/share", json={})
    assert shared.status_code == 201
    assert (await client.get(f"/file/get/{(await shared.get_json())['token']}")).headers["X-Encrypted"] == "aes128gcm"


async def test_the_share_target_takes_an_encrypted_post(client):
    account, _ = await enabled(client)
    item = account.item(b"shared from the sheet")
    response = await client.post("/share-target", data=item.body, headers={**headers(item), "Accept":
                                                                           "application/json"})
    assert response.status_code == 201, await response.get_data(as_text=True)
    assert await (await client.get("/file/buffer")).get_data() == item.body


async def test_a_plaintext_write_is_refused_inside_its_transaction_too(app, client):
    # The early check reads the reader connection before the body; the
    # write's own transaction checks again, so a post racing with enabling
    # cannot store plaintext.
    user_id, device = await register_user(client, "alice")
    assert (await client.post("/account/e2e/enable", json=Account(user_id).enable_body(PASSWORD, device))
            ).status_code == 200
    from server import buffer
    from server.auth import Principal
    from server.errors import APIError

    principal = Principal(user_id, "alice", "session", int(device.split(":")[1]), "test")
    async with app.app_context():
        with pytest.raises(APIError) as refused:
            await buffer.store_text(principal, "slipped past the early check")
    assert refused.value.code == "encrypted_account"
    assert (await client.get("/file/buffer")).status_code == 204


@pytest.fixture
async def small_uploads(tmp_path):
    from server import create_app

    app = create_app({"DATA_DIR": str(tmp_path / "small"), "MAX_UPLOAD_BYTES": 100_000})
    async with app.test_app():
        yield app.test_client()


async def test_an_encrypted_file_may_hold_the_upload_limit_in_plaintext(small_uploads):
    account, _ = await enabled(small_uploads)
    assert (await post(small_uploads, account.item(b"f" * 100_000, "file"), "file")).status_code == 201
    await error_of(await post(small_uploads, account.item(b"f" * 100_001, "file"), "file"), 413, "too_large")
