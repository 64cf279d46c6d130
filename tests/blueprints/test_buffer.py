"""POST/GET /file/buffer and its history, through Quart's test client."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest

from tests.blueprints.test_account import error_of
from tests.conftest import make_token, register
from tests.helpers import BROWSER_ACCEPT, multipart, stored_files, temp_files
from server.services import services

TEXT = {"X-Data-Type": "text"}


def file_headers(name: str, **extra) -> dict:
    return {"X-Data-Type": "file", "X-File-Name": quote(name), **extra}


async def post_text(client, text: str | bytes, **headers):
    data = text.encode() if isinstance(text, str) else text
    return await client.post("/file/buffer", data=data, headers={**TEXT, **headers})


async def post_file(client, name: str, data: bytes, **headers):
    return await client.post("/file/buffer", data=data, headers=file_headers(name, **headers))


async def items_of(client) -> list[dict]:
    response = await client.get("/file/buffer/items")
    assert response.status_code == 200
    return (await response.get_json())["items"]


# --- text ------------------------------------------------------------------------------------------


async def test_empty_buffer_is_204(alice):
    response = await alice.get("/file/buffer")
    assert response.status_code == 204
    assert await response.get_data() == b""


async def test_text_round_trip(alice):
    response = await post_text(alice, "héllo, wörld 📋\n")
    assert response.status_code == 201
    body = await response.get_json()
    assert body["type"] == "text"
    assert body["seq"] == 1
    assert body["size"] == len("héllo, wörld 📋\n".encode())
    assert body["expires_at"] > time.time()
    assert "filename" not in body

    response = await alice.get("/file/buffer")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Data-Type"] == "text"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert (await response.get_data()).decode() == "héllo, wörld 📋\n"


async def test_empty_text_is_a_valid_buffer(alice):
    assert (await post_text(alice, "")).status_code == 201
    response = await alice.get("/file/buffer")
    assert response.status_code == 200 and await response.get_data() == b""


async def test_invalid_utf8_text_is_400(alice):
    await error_of(await post_text(alice, b"\xff\xfe bad"), 400, "invalid_text")
    assert (await alice.get("/file/buffer")).status_code == 204


@pytest.fixture
def small_text_settings(settings):
    settings["MAX_TEXT_BYTES"] = 100
    return settings


async def test_text_over_its_limit_is_413(small_text_settings, alice):
    assert (await post_text(alice, "x" * 100)).status_code == 201
    message = await error_of(await post_text(alice, "x" * 101), 413, "too_large")
    assert "100 bytes" in message
    # Counted in bytes, not characters.
    await error_of(await post_text(alice, "é" * 51), 413, "too_large")


# --- text as a form's one file part (the original clients) ----------------------------------------


async def post_text_form(client, parts):
    body, content_type = multipart(parts)
    return await client.post("/file/buffer", data=body, headers={**TEXT, "Content-Type": content_type})


async def test_text_as_the_one_file_part_of_a_form(alice, settings):
    # What the Django test client sends for {'file': BytesIO(...)}: a nameless
    # file is given its field's name.
    response = await post_text_form(alice, [("note", "ignored"), ("file", "file", "héllo ✓".encode())])
    assert response.status_code == 201
    created = await response.get_json()
    assert created["type"] == "text" and created["size"] == len("héllo ✓".encode()) and "filename" not in created
    response = await alice.get("/file/buffer")
    assert response.headers["X-Data-Type"] == "text"
    assert await response.get_data(as_text=True) == "héllo ✓"
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_text_in_a_form_has_the_limit_and_the_check_of_a_raw_text(small_text_settings, alice):
    assert (await post_text_form(alice, [("file", "file", b"x" * 100)])).status_code == 201
    message = await error_of(await post_text_form(alice, [("file", "file", b"x" * 101)]), 413, "too_large")
    assert "100 bytes" in message
    await error_of(await post_text_form(alice, [("file", "file", b"\xff\xfe")]), 400, "invalid_text")
    assert await (await alice.get("/file/buffer")).get_data() == b"x" * 100


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [("file", "not a file part, a field")],
        [("file", "a", b"a"), ("file", "b", b"b")],
        [("upload", "a", b"a")],
    ],
    ids=["empty", "a-field", "two-files", "wrong-field"],
)
async def test_a_form_of_text_without_exactly_one_file_part_is_400(alice, parts):
    # Never the form's boilerplate as someone's clipboard (tests/test_fuzz.py found that once).
    message = await error_of(await post_text_form(alice, parts), 400, "bad_multipart")
    assert "exactly one file" in message
    assert (await alice.get("/file/buffer")).status_code == 204


# --- X-Data-Type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Data-Type": ""}, {"X-Data-Type": "image"}, {"X-Data-Type": "texts"}])
async def test_missing_or_unknown_data_type_is_400(alice, headers):
    response = await alice.post("/file/buffer", data=b"data", headers=headers)
    message = await error_of(response, 400, "invalid_data_type")
    assert "X-Data-Type" in message


async def test_data_type_is_case_insensitive(alice):
    assert (await alice.post("/file/buffer", data=b"x", headers={"X-Data-Type": "Text"})).status_code == 201


async def test_a_browser_gets_an_html_error_page(alice):
    response = await alice.post("/file/buffer", data=b"data", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "X-Data-Type" in await response.get_data(as_text=True)


# --- files: raw body -------------------------------------------------------------------------------


async def test_raw_file_named_by_percent_encoded_x_file_name(alice, settings):
    data = bytes(range(256)) * 40
    response = await post_file(alice, "Relevé de compte 📄.pdf", data)
    assert response.status_code == 201
    body = await response.get_json()
    assert body["type"] == "file"
    assert body["filename"] == "Relevé de compte 📄.pdf"
    assert body["size"] == len(data)
    assert body["mime"] == "application/pdf"

    response = await alice.get("/file/buffer")
    assert response.status_code == 200
    assert response.headers["X-Data-Type"] == "file"
    assert await response.get_data() == data
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Relev%C3%A9%20de%20compte%20%F0%9F%93%84.pdf" in disposition
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert len(stored_files(settings["DATA_DIR"])) == 1
    assert temp_files(settings["DATA_DIR"]) == []


async def test_raw_file_named_by_content_disposition_filename_star(alice):
    headers = {"X-Data-Type": "file", "Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC%20rates.csv"}
    response = await alice.post("/file/buffer", data=b"a,b\n1,2\n", headers=headers)
    assert response.status_code == 201
    assert (await response.get_json())["filename"] == "€ rates.csv"


async def test_raw_file_named_by_plain_content_disposition(alice):
    headers = {"X-Data-Type": "file", "Content-Disposition": 'attachment; filename="report.txt"'}
    response = await alice.post("/file/buffer", data=b"report", headers=headers)
    assert (await response.get_json())["filename"] == "report.txt"


async def test_raw_utf8_bytes_in_x_file_name_are_understood(alice):
    # Some clients send the name's UTF-8 bytes unencoded (the test client
    # encodes header strings as UTF-8); the server sees them as latin-1 text.
    headers = {"X-Data-Type": "file", "X-File-Name": "café.txt"}
    response = await alice.post("/file/buffer", data=b"x", headers=headers)
    assert (await response.get_json())["filename"] == "café.txt"


async def test_filenames_are_sanitized(alice):
    response = await post_file(alice, "../../etc/.passwd\x07", b"x")
    assert (await response.get_json())["filename"] == "passwd"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Data-Type": "file"},
        {"X-Data-Type": "file", "X-File-Name": ""},
        {"X-Data-Type": "file", "X-File-Name": "..%2F.."},
        {"X-Data-Type": "file", "Content-Disposition": "attachment"},
    ],
)
async def test_file_without_a_name_is_400(alice, settings, headers):
    message = await error_of(await alice.post("/file/buffer", data=b"data", headers=headers), 400, "missing_filename")
    assert "X-File-Name" in message
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_badly_encoded_x_file_name_is_400(alice):
    response = await alice.post("/file/buffer", data=b"x", headers={"X-Data-Type": "file", "X-File-Name": "%FF%FE.txt"})
    await error_of(response, 400, "invalid_filename")


async def test_empty_file_is_allowed(alice):
    response = await post_file(alice, "empty.txt", b"")
    assert response.status_code == 201 and (await response.get_json())["size"] == 0
    response = await alice.get("/file/buffer")
    assert response.status_code == 200 and await response.get_data() == b""


async def test_streamed_body_in_many_chunks(alice, app):
    chunks = [bytes([i]) * 10_000 for i in range(50)]
    async with alice.request("/file/buffer", method="POST", headers=file_headers("chunks.bin")) as connection:
        for chunk in chunks:
            await connection.send(chunk)
        await connection.send_complete()
    response = await connection.as_response()
    assert response.status_code == 201, response
    assert await (await alice.get("/file/buffer")).get_data() == b"".join(chunks)


# --- files: multipart ------------------------------------------------------------------------------


async def test_multipart_with_one_file_part(alice):
    body, content_type = multipart([("file", "photo.jpg", b"\xff\xd8\xff" + b"\0" * 1000, "image/jpeg")])
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    assert response.status_code == 201
    created = await response.get_json()
    assert created["filename"] == "photo.jpg" and created["size"] == 1003 and created["mime"] == "image/jpeg"
    response = await alice.get("/file/buffer")
    assert (await response.get_data()).startswith(b"\xff\xd8\xff")


async def test_multipart_with_a_utf8_part_filename_and_extra_fields(alice):
    body, content_type = multipart([("note", "ignored"), ("file", "naïve 日本.txt", b"text")])
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    assert response.status_code == 201
    assert (await response.get_json())["filename"] == "naïve 日本.txt"


@pytest.mark.parametrize(
    "parts",
    [
        [("note", "no file here")],
        [("file", "a.txt", b"a"), ("file", "b.txt", b"b")],
        [("upload", "a.txt", b"a")],
        [("file", "a.txt", b"a"), ("other", "b.txt", b"b")],
    ],
    ids=["no-file", "two-files", "wrong-field", "extra-file"],
)
async def test_multipart_without_exactly_one_file_part_is_400(alice, settings, parts):
    body, content_type = multipart(parts)
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    message = await error_of(response, 400, "bad_multipart")
    assert "exactly one file" in message
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_multipart_file_part_without_a_name_is_400(alice):
    body, content_type = multipart([("file", "", b"anonymous")])
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    await error_of(response, 400, "missing_filename")


async def test_truncated_multipart_is_400_and_leaves_nothing(alice, settings):
    body, content_type = multipart([("file", "a.bin", b"x" * 5000)])
    response = await alice.post("/file/buffer", data=body[:-30],
                                headers={"X-Data-Type": "file", "Content-Type": content_type})
    await error_of(response, 400, "bad_multipart")
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_multipart_without_a_boundary_is_400(alice):
    response = await alice.post("/file/buffer", data=b"--x\r\n",
                                headers={"X-Data-Type": "file", "Content-Type": "multipart/form-data"})
    await error_of(response, 400, "bad_multipart")


# --- limits ----------------------------------------------------------------------------------------


@pytest.fixture
def small_upload_settings(settings):
    settings["MAX_UPLOAD_BYTES"] = 10_000
    return settings


async def test_raw_file_over_the_limit_is_413_and_leaves_nothing(small_upload_settings, alice, settings):
    assert (await post_file(alice, "fits.bin", b"x" * 10_000)).status_code == 201
    message = await error_of(await post_file(alice, "big.bin", b"x" * 10_001), 413, "too_large")
    assert "10000 bytes" in message
    assert len(stored_files(settings["DATA_DIR"])) == 1
    assert temp_files(settings["DATA_DIR"]) == []
    assert len(await items_of(alice)) == 1


async def test_chunked_upload_over_the_limit_is_413_and_leaves_nothing(small_upload_settings, alice, settings):
    async with alice.request("/file/buffer", method="POST", headers=file_headers("big.bin")) as connection:
        for _ in range(30):
            await connection.send(b"y" * 1000)
        await connection.send_complete()
    response = await connection.as_response()
    assert response.status_code == 413
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_an_answer_before_the_body_ends_says_the_connection_closes(small_upload_settings, alice, settings):
    headers = {**file_headers("big.bin"), "Transfer-Encoding": "chunked"}
    async with alice.request("/file/buffer", method="POST", headers=headers) as connection:
        for _ in range(12):
            await connection.send(b"y" * 1000)
        # The client is still sending (no end of body) when the server answers.
        for _ in range(100):
            if connection.status_code is not None:
                break
            await asyncio.sleep(0.01)
        await connection.disconnect()
    response = await connection.as_response()
    assert response.status_code == 413
    # Hypercorn closes such a connection; a keep-alive client must not reuse it.
    assert response.headers["Connection"] == "close"
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_multipart_over_the_limit_is_413_and_leaves_nothing(small_upload_settings, alice, settings):
    body, content_type = multipart([("file", "big.bin", b"z" * 10_001)])
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    await error_of(response, 413, "too_large")
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


async def test_an_abandoned_upload_leaves_no_temp_file(alice, settings):
    async with alice.request("/file/buffer", method="POST", headers=file_headers("gone.bin")) as connection:
        await connection.send(b"partial" * 1000)
        await asyncio.sleep(0.05)
        await connection.disconnect()
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []
    assert (await alice.get("/file/buffer")).status_code == 204


@pytest.fixture
def quota_settings(settings):
    settings["QUOTA_BYTES"] = 5000
    settings["MAX_UPLOAD_BYTES"] = 4000
    return settings


async def test_over_the_quota_is_413_quota_exceeded(quota_settings, alice, settings):
    assert (await post_file(alice, "one.bin", b"1" * 3000)).status_code == 201
    message = await error_of(await post_file(alice, "two.bin", b"2" * 3000), 413, "quota_exceeded")
    assert "quota" in message and "3000 of 5000" in message
    body, content_type = multipart([("file", "three.bin", b"3" * 2001)])
    response = await alice.post("/file/buffer", data=body, headers={"X-Data-Type": "file", "Content-Type": content_type})
    await error_of(response, 413, "quota_exceeded")
    assert len(stored_files(settings["DATA_DIR"])) == 1 and temp_files(settings["DATA_DIR"]) == []
    # What is left of the quota still fits.
    assert (await post_file(alice, "four.bin", b"4" * 2000)).status_code == 201


async def test_quota_is_per_user(quota_settings, app):
    alice, bob = app.test_client(), app.test_client()
    await register(alice, "alice")
    await register(bob, "bob")
    assert (await post_file(alice, "a.bin", b"a" * 4000)).status_code == 201
    assert (await post_file(bob, "b.bin", b"b" * 4000)).status_code == 201


# --- history, cap, expiry --------------------------------------------------------------------------


@pytest.fixture
def history_settings(settings):
    settings["HISTORY_SIZE"] = 3
    return settings


async def test_history_keeps_the_newest_items(history_settings, alice, settings):
    for n in range(5):
        assert (await post_text(alice, f"text {n}")).status_code == 201
    items = await items_of(alice)
    assert [item["seq"] for item in items] == [5, 4, 3]
    assert await (await alice.get("/file/buffer")).get_data() == b"text 4"
    oldest_id = items[-1]["id"]
    assert await (await alice.get(f"/file/buffer/items/{oldest_id}")).get_data() == b"text 2"
    # Files trimmed out of the history leave the disk too.
    for n in range(4):
        await post_file(alice, f"f{n}.bin", b"f" * 10)
    assert len(stored_files(settings["DATA_DIR"])) == 3


@pytest.fixture
def file_cap_settings(settings):
    settings["MAX_FILES"] = 2
    return settings


async def test_over_the_file_cap_the_oldest_files_go(file_cap_settings, alice, settings):
    ids = []
    for n in range(3):
        response = await post_file(alice, f"file{n}.txt", f"content {n}".encode())
        ids.append((await response.get_json())["id"])
    await post_text(alice, "texts do not count")
    assert len(stored_files(settings["DATA_DIR"])) == 2
    await error_of(await alice.get(f"/file/buffer/items/{ids[0]}"), 404, "not_found")
    assert await (await alice.get(f"/file/buffer/items/{ids[1]}")).get_data() == b"content 1"
    assert await (await alice.get(f"/file/buffer/items/{ids[2]}")).get_data() == b"content 2"
    assert [item.get("filename") for item in await items_of(alice)] == [None, "file2.txt", "file1.txt"]


@pytest.fixture
def expiry_settings(settings):
    settings["EXPIRE_SECONDS"] = 1
    return settings


async def test_expired_items_are_not_served_before_any_sweep(expiry_settings, app, alice):
    await post_text(alice, "soon gone")
    created = await (await post_file(alice, "gone.txt", b"gone")).get_json()
    assert created["expires_at"] - created["created_at"] == pytest.approx(1, abs=0.01)
    await asyncio.sleep(1.1)
    assert (await alice.get("/file/buffer")).status_code == 204
    await error_of(await alice.get(f"/file/buffer/items/{created['id']}"), 404, "not_found")
    assert await items_of(alice) == []
    # The rows are still there: the read refused them, not the sweeper.
    assert await services(app).db.read(lambda conn: conn.value("SELECT COUNT(*) FROM items")) == 2


# --- items API -------------------------------------------------------------------------------------


async def test_items_can_be_read_deleted_and_shared(alice, client):
    first = await (await post_file(alice, "keep.txt", b"keep me")).get_json()
    second = await (await post_text(alice, "newest")).get_json()
    response = await alice.delete(f"/file/buffer/items/{second['id']}")
    assert response.status_code == 200
    # The buffer falls back to what is left.
    assert await (await alice.get("/file/buffer")).get_data() == b"keep me"
    await error_of(await alice.delete(f"/file/buffer/items/{second['id']}"), 404, "not_found")

    response = await alice.post(f"/file/buffer/items/{first['id']}/share")
    assert response.status_code == 201
    share = await response.get_json()
    assert share["filename"] == "keep.txt" and share["url"].startswith("http://localhost/file/get?token=")
    anonymous = client.app.test_client()
    assert await (await anonymous.get(f"/file/get?token={share['token']}")).get_data() == b"keep me"


async def test_texts_cannot_be_shared(alice):
    text = await (await post_text(alice, "not a file")).get_json()
    await error_of(await alice.post(f"/file/buffer/items/{text['id']}/share"), 404, "not_found")


async def test_another_users_items_are_invisible(app):
    alice, bob = app.test_client(), app.test_client()
    await register(alice, "alice")
    await register(bob, "bob")
    item = await (await post_file(alice, "private.txt", b"secret")).get_json()
    await error_of(await bob.get(f"/file/buffer/items/{item['id']}"), 404, "not_found")
    await error_of(await bob.delete(f"/file/buffer/items/{item['id']}"), 404, "not_found")
    await error_of(await bob.post(f"/file/buffer/items/{item['id']}/share"), 404, "not_found")
    assert (await bob.get("/file/buffer")).status_code == 204


async def test_seq_grows_with_every_write(alice):
    seqs = [(await (await post_text(alice, str(n))).get_json())["seq"] for n in range(3)]
    assert seqs == [1, 2, 3]


# --- auth and ranges -------------------------------------------------------------------------------


async def test_buffer_needs_credentials(client):
    await error_of(await client.get("/file/buffer"), 401, "unauthorized")
    await error_of(await post_text(client, "anonymous"), 401, "unauthorized")


async def test_buffer_with_a_bearer_token(app, alice):
    token = await make_token(alice)
    script = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    response = await script.post("/file/buffer", data=b"\x00\x01", headers={**file_headers("bin.dat"), **bearer})
    assert response.status_code == 201
    assert await (await script.get("/file/buffer", headers=bearer)).get_data() == b"\x00\x01"
    assert await (await alice.get("/file/buffer")).get_data() == b"\x00\x01"  # same user, same buffer


async def test_range_request_on_the_buffer(alice):
    data = bytes(range(256)) * 4
    await post_file(alice, "range.bin", data)
    response = await alice.get("/file/buffer", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await response.get_data() == data[100:200]
    response = await alice.get("/file/buffer", headers={"Range": "bytes=1000-"})
    assert response.status_code == 206 and await response.get_data() == data[1000:]


async def test_after_a_secret_key_change_a_link_is_not_handed_out_wrong(app, alice, client):
    item = await (await post_file(alice, "keep.txt", b"keep me")).get_json()
    first = await (await alice.post(f"/file/buffer/items/{item['id']}/share")).get_json()
    # What a new CLOUDBUFFER_SECRET_KEY does to the derivation (the session
    # cookie would go too, so the row's nonce is changed instead).
    await services(app).db.write(lambda conn: conn.run("UPDATE shares SET nonce = ?", (b"from another key",)))
    # The old token can no longer be derived: sharing again makes a new link
    # instead of handing out a URL that opens nothing.
    again = await alice.post(f"/file/buffer/items/{item['id']}/share")
    assert again.status_code == 201 and (await again.get_json())["url"] != first["url"]
    (listed,) = [i for i in await items_of(alice) if i["id"] == item["id"]]
    assert [("url" in link) for link in listed["links"]] == [True, False]
    anonymous = client.app.test_client()
    assert await (await anonymous.get(f"/file/get?token={first['token']}&download=1")).get_data() == b"keep me"


# --- search ------------------------------------------------------------------------------------------


async def search(client, **params) -> list[dict]:
    response = await client.get("/file/buffer/items", query_string=params)
    assert response.status_code == 200, await response.get_data()
    return (await response.get_json())["items"]


async def test_search_matches_texts_and_filenames_in_any_case(alice, client):
    await post_text(alice, "Meeting notes for Tuesday")
    await post_file(alice, "Été à la plage.JPG", b"jpeg")
    await post_text(alice, "the Wi-Fi password is ÉTÉ-2026")
    await post_file(alice, "report.pdf", b"%PDF")
    assert [i.get("filename") for i in await search(alice, q="été")] == [None, "Été à la plage.JPG"]
    assert [i["type"] for i in await search(alice, q="ÉTÉ", kind="file")] == ["file"]
    assert [i["type"] for i in await search(alice, q="été", kind="text")] == ["text"]
    assert len(await search(alice, q="  meeting  ")) == 1  # trimmed
    assert [i.get("filename") for i in await search(alice, kind="file")] == ["report.pdf", "Été à la plage.JPG"]
    assert await search(alice, q="nothing like it") == []
    # The query is matched as it is: % and _ are no wildcards.
    assert await search(alice, q="%") == [] and await search(alice, q="_") == []
    assert len(await search(alice)) == 4 and len(await search(alice, q="")) == 4


async def test_search_covers_only_the_history(history_settings, alice):
    for n in range(5):
        await post_text(alice, f"note {n}")
    assert [i["seq"] for i in await search(alice, q="note")] == [5, 4, 3]


async def test_search_sees_only_the_users_own_items(app):
    alice, bob = app.test_client(), app.test_client()
    await register(alice, "alice")
    await register(bob, "bob")
    await post_text(alice, "alice's secret")
    assert await search(bob, q="secret") == []


async def test_search_refuses_bad_parameters(alice):
    await error_of(await alice.get("/file/buffer/items", query_string={"kind": "image"}), 400, "invalid_kind")
    await error_of(await alice.get("/file/buffer/items?kind="), 400, "invalid_kind")  # empty is no filter's value
    await error_of(await alice.get("/file/buffer/items", query_string={"q": "x" * 201}), 400, "invalid_query")
