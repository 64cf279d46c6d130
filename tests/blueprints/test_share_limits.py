"""Share links with a download limit, and burn after reading: what counts as
a download (docs/api.md), taken atomically, continuations not counted again,
and the link gone (its file too, unless the buffer holds it) at the limit.
And links with a password: asked for by the recipient's page, a wrong one
and a missing link alike, rate limited per address and per link."""
from __future__ import annotations

import asyncio
import base64
import time

from server import resumable
from server.blueprints.files import LAST_DOWNLOAD_GRACE_SECONDS
from server.services import services
from server.sweeper import sweep_once
from tests.blueprints.test_account import error_of
from tests.blueprints.test_files import share
from tests.helpers import BROWSER_ACCEPT, multipart, stored_files

JSON = {"Accept": "application/json"}
DATA = b"0123456789" * 100


async def limited(client, **query) -> dict:
    body, content_type = multipart([("file", "secret.txt", DATA)])
    response = await client.post("/file/load", data=body, query_string=query,
                                 headers={"Content-Type": content_type, **JSON})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def download(client, link: dict, **headers):
    return await client.get(f"/file/get?token={link['token']}&download=1", headers=headers)


async def test_burn_after_reading_serves_once_then_looks_missing(alice):
    link = await limited(alice, burn="1")
    assert link["max_downloads"] == 1 and link["downloads_left"] == 1
    page = await alice.get(f"/file/get?token={link['token']}", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and "one more download" in await page.get_data(as_text=True)
    assert "shared-preview" not in await page.get_data(as_text=True)  # a preview would spend the download
    head = await alice.head(f"/file/get?token={link['token']}&download=1")
    assert head.status_code == 200  # HEAD takes nothing
    first = await download(alice, link)
    assert first.status_code == 200 and await first.get_data() == DATA
    second = await download(alice, link)
    missing = await alice.get("/file/get?token=" + "x" * 32 + "&download=1")
    assert await error_of(second, 404, "not_found") == await error_of(missing, 404, "not_found")
    page = await alice.get(f"/file/get?token={link['token']}", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 404
    assert (await alice.get(f"/file/qr?token={link['token']}")).status_code == 404
    profile = await (await alice.get("/account/profile", headers=JSON)).get_json()
    assert profile["shares"] == []  # gone from the owner's list too


async def test_a_limit_counts_each_download_and_the_profile_says_what_is_left(alice):
    link = await limited(alice, max_downloads="3")
    for left in (2, 1):
        assert (await download(alice, link)).status_code == 200
        profile = await (await alice.get("/account/profile", headers=JSON)).get_json()
        assert [(s["max_downloads"], s["downloads_left"]) for s in profile["shares"]] == [(3, left)]
    page = await alice.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})
    assert "1 of 3 downloads left" in await page.get_data(as_text=True)
    assert (await download(alice, link)).status_code == 200
    await error_of(await download(alice, link), 404, "not_found")


async def test_a_range_continuation_of_a_download_is_not_counted_again(alice):
    link = await limited(alice, max_downloads="1")
    first = await alice.get(f"/file/get?token={link['token']}&download=1", headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and await first.get_data() == DATA[:100]
    etag = first.headers["ETag"]
    # The rest, as a browser resuming a download asks for it: counted once, in all.
    rest = await download(alice, link, Range="bytes=100-", **{"If-Range": etag})
    assert rest.status_code == 206 and await rest.get_data() == DATA[100:]
    again = await download(alice, link, Range="bytes=500-", **{"If-Range": etag})
    assert again.status_code == 206
    # A Range without the download's ETag is a new download: none is left.
    await error_of(await download(alice, link, Range="bytes=100-"), 404, "not_found")
    forged = etag.replace("d1.", "d2.")
    await error_of(await download(alice, link, Range="bytes=100-", **{"If-Range": forged}), 404, "not_found")
    await error_of(await download(alice, link, Range="bytes=100-", **{"If-Range": '"d1.AAAA"'}), 404, "not_found")


async def test_the_count_is_taken_atomically(alice, app):
    link = await limited(alice, max_downloads="3")
    clients = [app.test_client() for _ in range(12)]
    answers = await asyncio.gather(*(download(client, link) for client in clients))
    assert sorted(answer.status_code for answer in answers) == [200] * 3 + [404] * 9


async def test_at_the_limit_the_file_goes_unless_the_buffer_holds_it(alice, app):
    registry = services(app)
    link = await limited(alice, burn="true")
    posted = await alice.post("/file/buffer", data=b"kept", headers={"X-Data-Type": "file", "X-File-Name": "k.txt"})
    item = await posted.get_json()
    shared = await (await alice.post(f"/file/buffer/items/{item['id']}/share", json={"burn": True})).get_json()
    assert shared["max_downloads"] == 1 and not shared["reused"]
    for each in (link, shared):
        assert (await download(alice, each)).status_code == 200
    assert len(stored_files(registry.settings.data_dir)) == 2  # continuations still work for a while
    later = time.time() + LAST_DOWNLOAD_GRACE_SECONDS + 1
    # The sweeper of an hour later (expiry is in the rows it reads).
    await registry.db.write(lambda conn: conn.run("UPDATE shares SET expires_at = ? WHERE expires_at < ?",
                                                  (time.time() - 1, later)))
    await sweep_once(registry.db, registry.storage, 60)
    assert len(stored_files(registry.settings.data_dir)) == 1
    assert await (await alice.get("/file/buffer")).get_data() == b"kept"


async def test_limits_are_checked_before_the_file_is_read(alice, app):
    from tests.blueprints.test_files import dump

    before = await dump(app)
    body, content_type = multipart([("file", "a.txt", b"x")])
    for query, code in (({"max_downloads": "0"}, "invalid_max_downloads"),
                        ({"max_downloads": "abc"}, "invalid_max_downloads"),
                        ({"burn": "1", "max_downloads": "3"}, "invalid_max_downloads")):
        response = await alice.post("/file/load", data=body, query_string=query,
                                    headers={"Content-Type": content_type, **JSON})
        await error_of(response, 400, code)
    response = await alice.post("/file/buffer/items/1/share", json={"max_downloads": 0})
    await error_of(response, 400, "invalid_max_downloads")
    assert await dump(app) == before


async def test_the_options_as_form_fields(alice):
    body, content_type = multipart([("max_downloads", "2"), ("expires_in", "600"),
                                    ("file", "f.txt", b"form")])
    response = await alice.post("/file/load", data=body, headers={"Content-Type": content_type, **JSON})
    link = await response.get_json()
    assert response.status_code == 201 and link["max_downloads"] == 2
    assert 590 < link["expires_at"] - time.time() <= 600


async def test_an_unlimited_link_is_unchanged(alice):
    link = await share(alice)
    assert link["max_downloads"] is None and link["downloads_left"] is None
    for _ in range(3):
        assert (await download(alice, link)).status_code == 200


async def test_a_resumable_upload_can_make_a_limited_link(alice):
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in
                        {"filename": "r.bin", "target": "share", "max_downloads": "2"}.items())
    response = await alice.post("/file/uploads", data=b"tus", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": "3", "Upload-Metadata": metadata,
        "Content-Type": "application/offset+octet-stream", **JSON})
    state = await response.get_json()
    assert state["share"]["max_downloads"] == 2
    assert resumable.TARGETS == ("buffer", "share")


async def protected(client, password="open sesame", **fields) -> dict:
    body, content_type = multipart([("password", password), *fields.items(), ("file", "secret.txt", DATA)])
    response = await client.post("/file/load", data=body, headers={"Content-Type": content_type, **JSON})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def test_a_password_link_asks_for_it_and_opens_with_it(alice, app):
    link = await protected(alice)
    assert link["password"] is True
    stored = await services(app).db.read(lambda conn: conn.value("SELECT password_hash FROM shares"))
    assert stored.startswith("$argon2id$") and "open sesame" not in stored
    recipient = app.test_client()
    page = await recipient.get(f"/file/get?token={link['token']}", headers={"Accept": BROWSER_ACCEPT})
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="password"' in html and "secret.txt" not in html
    await error_of(await download(recipient, link), 404, "not_found")  # no bytes without it
    opened = await recipient.post(f"/file/get?token={link['token']}", form={"password": "open sesame"},
                                  headers={"Accept": BROWSER_ACCEPT})
    assert opened.status_code == 303
    landing = await recipient.get(opened.headers["Location"], headers={"Accept": BROWSER_ACCEPT})
    assert "secret.txt" in await landing.get_data(as_text=True)
    got = await recipient.get(opened.headers["Location"] + "&download=1")
    assert await got.get_data() == DATA
    by_path = await recipient.post(f"/file/get/{link['token']}", json={"password": "open sesame"})
    assert by_path.status_code == 303
    assert await (await recipient.get(by_path.headers["Location"] + "&download=1")).get_data() == DATA
    tampered = opened.headers["Location"].replace("unlock=", "unlock=9")
    await error_of(await recipient.get(tampered + "&download=1"), 404, "not_found")


async def test_a_wrong_password_and_a_missing_link_look_the_same(alice, app):
    link = await protected(alice)
    unprotected = await share(alice)
    recipient = app.test_client()
    answers = []
    for token, password in ((link["token"], "wrong"), ("x" * 32, "wrong"), (unprotected["token"], "anything")):
        for accept in (BROWSER_ACCEPT, "application/json"):
            response = await recipient.post(f"/file/get?token={token}", form={"password": password},
                                            headers={"Accept": accept})
            answers.append((accept, response.status_code, response.mimetype,
                            (await response.get_data(as_text=True)).replace(token, "T")))
    browser = {answer[1:] for answer in answers if answer[0] == BROWSER_ACCEPT}
    api = {answer[1:] for answer in answers if answer[0] != BROWSER_ACCEPT}
    assert len(browser) == 1 and len(api) == 1
    assert next(iter(browser))[0] == 404 and next(iter(api))[0] == 404


async def test_password_tries_are_limited_per_link_whatever_the_address(alice, app):
    link = await protected(alice)
    statuses = []
    for n in range(12):
        client = app.test_client()
        response = await client.post(f"/file/get?token={link['token']}", form={"password": f"guess {n}"},
                                     headers={"Accept": "application/json"},
                                     scope_base={"client": (f"198.51.100.{n}", 40000)})
        statuses.append(response.status_code)
    assert statuses[:10] == [404] * 10 and statuses[10:] == [429, 429]
    # The right password is refused too while the link is being guessed at.
    response = await app.test_client().post(f"/file/get?token={link['token']}", form={"password": "open sesame"},
                                            scope_base={"client": ("203.0.113.9", 40000)})
    assert response.status_code == 429


async def test_a_password_link_with_a_limit_and_from_the_history(alice):
    link = await protected(alice, max_downloads="1")
    assert link["max_downloads"] == 1 and link["password"]
    opened = await alice.post(f"/file/get?token={link['token']}", form={"password": "open sesame"})
    assert (await alice.get(opened.headers["Location"] + "&download=1")).status_code == 200
    await error_of(await alice.get(opened.headers["Location"] + "&download=1"), 404, "not_found")
    posted = await alice.post("/file/buffer", data=b"mine", headers={"X-Data-Type": "file", "X-File-Name": "m.txt"})
    item = await posted.get_json()
    made = await (await alice.post(f"/file/buffer/items/{item['id']}/share", json={"password": "pw"})).get_json()
    assert made["password"] and not made["reused"]
    profile = await (await alice.get("/account/profile", headers=JSON)).get_json()
    assert [s["password"] for s in profile["shares"]] == [True]
    body, content_type = multipart([("file", "a.txt", b"x")])
    response = await alice.post("/file/load?password=no", data=body, headers={"Content-Type": content_type, **JSON})
    await error_of(response, 400, "invalid_password")
