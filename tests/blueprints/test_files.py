"""Share links: /file/load → /file/get (query and path form) and /file/qr."""
from __future__ import annotations

import asyncio
import re
from xml.etree import ElementTree

import pytest

from tests.blueprints.test_account import error_of
from tests.conftest import make_token, register
from tests.helpers import BROWSER_ACCEPT, database_content, multipart, stored_files, table_names, temp_files
from server.services import services

JSON = {"Accept": "application/json"}


async def share(client, filename="report.pdf", data=b"%PDF-1.7 fake", **headers) -> dict:
    body, content_type = multipart([("file", filename, data)])
    response = await client.post("/file/load", data=body, headers={"Content-Type": content_type, **JSON, **headers})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def dump(app) -> list[str]:
    """The whole database as SQL, to prove a request changed nothing."""
    def read_all(conn) -> list[str]:
        lines = []
        for table in table_names(conn):
            lines += [f"{table}: {tuple(row)}" for row in conn.all(f"SELECT * FROM {table} ORDER BY 1")]
        return lines

    return await services(app).db.read(read_all)


async def test_load_page_needs_login_and_renders(client):
    await error_of(await client.get("/file/load", headers=JSON), 401, "unauthorized")
    await register(client, "alice")
    response = await client.get("/file/load", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "<form" in await response.get_data(as_text=True)


async def test_post_load_answers_json_with_an_absolute_link(alice, settings):
    data = b"shared bytes" * 100
    body = await share(alice, "Q3 résumé.pdf", data)
    assert set(body) == {"id", "token", "url", "qr_url", "filename", "size", "created_at", "expires_at", "reused",
                         "max_downloads", "downloads_left", "password"}
    assert len(body["token"]) >= 22  # ≥ 128 bits, URL-safe base64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body["token"])
    assert body["url"] == f"http://localhost/file/get?token={body['token']}"
    assert body["qr_url"] == f"http://localhost/file/qr?token={body['token']}"
    assert body["filename"] == "Q3 résumé.pdf"
    assert body["size"] == len(data)
    assert len(stored_files(settings["DATA_DIR"])) == 1 and temp_files(settings["DATA_DIR"]) == []
    # A share link is not a buffer item.
    assert (await alice.get("/file/buffer")).status_code == 204


@pytest.fixture
def public_url_settings(settings):
    settings["PUBLIC_URL"] = "https://buffer.example.com"
    return settings


@pytest.mark.filterwarnings("ignore:Secure cookies will be ignored")  # https PUBLIC_URL, http test client
async def test_links_use_the_public_url_when_set(public_url_settings, alice):
    body = await share(alice)
    assert body["url"] == f"https://buffer.example.com/file/get?token={body['token']}"


async def test_post_load_in_a_browser_shows_the_link_and_its_qr_code(alice):
    body, content_type = multipart([("file", "photo.png", b"\x89PNG fake")])
    response = await alice.post("/file/load", data=body, headers={"Content-Type": content_type, "Accept": BROWSER_ACCEPT})
    assert response.status_code == 201 and response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    match = re.search(r"http://localhost/file/get\?token=([A-Za-z0-9_-]+)", page)
    assert match, page
    assert "<svg" in page
    assert "photo.png" in page
    assert (await alice.get(f"/file/get?token={match.group(1)}")).status_code == 200


async def test_post_load_with_a_bearer_token(app, alice):
    token = await make_token(alice)
    script = app.test_client()
    body = await share(script, "from-cron.log", b"log", Authorization=f"Bearer {token}")
    assert (await script.get(f"/file/get?token={body['token']}")).status_code == 200


async def test_post_load_needs_exactly_one_file_part(alice, settings):
    body, content_type = multipart([("file", "a.txt", b"a"), ("file", "b.txt", b"b")])
    response = await alice.post("/file/load", data=body, headers={"Content-Type": content_type})
    await error_of(response, 400, "bad_multipart")
    response = await alice.post("/file/load", data=b"raw", headers={"Content-Type": "application/octet-stream"})
    await error_of(response, 400, "bad_multipart")
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


@pytest.fixture
def small_upload_settings(settings):
    settings["MAX_UPLOAD_BYTES"] = 1000
    return settings


async def test_post_load_over_the_limit_is_413(small_upload_settings, alice, settings):
    body, content_type = multipart([("file", "big.bin", b"b" * 1001)])
    response = await alice.post("/file/load", data=body, headers={"Content-Type": content_type})
    await error_of(response, 413, "too_large")
    assert stored_files(settings["DATA_DIR"]) == [] and temp_files(settings["DATA_DIR"]) == []


# --- downloads -------------------------------------------------------------------------------------


async def test_anyone_with_the_token_downloads_with_safe_headers(app, alice):
    data = b"<html><script>alert(1)</script></html>"
    body = await share(alice, "page.html", data)
    anonymous = app.test_client()
    for path in (f"/file/get?token={body['token']}", f"/file/get/{body['token']}"):
        response = await anonymous.get(path)
        assert response.status_code == 200
        assert await response.get_data() == data
        headers = response.headers
        assert headers["Content-Disposition"] == "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
        assert headers["Cache-Control"] == "private, no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Content-Length"] == str(len(data))
        assert headers["Accept-Ranges"] == "bytes"


async def test_download_names_use_rfc_8187(alice):
    body = await share(alice, "Überweisung 2024; 100%.pdf", b"x")
    response = await alice.get(f"/file/get?token={body['token']}")
    disposition = response.headers["Content-Disposition"]
    # An ASCII fallback for old clients, then the exact name in UTF-8.
    assert disposition == (
        "attachment; filename=\"Uberweisung 2024_ 100_.pdf\"; filename*=UTF-8''%C3%9Cberweisung%202024%3B%20100%25.pdf"
    )


async def test_downloading_changes_nothing(app, alice, settings):
    body = await share(alice, "twice.txt", b"same every time")
    before, files_before = await dump(app), stored_files(settings["DATA_DIR"])
    anonymous = app.test_client()
    for _ in range(2):  # a link-preview bot, then the person
        response = await anonymous.get(f"/file/get?token={body['token']}")
        assert await response.get_data() == b"same every time"
        await anonymous.get(f"/file/qr?token={body['token']}")
    assert await dump(app) == before
    assert stored_files(settings["DATA_DIR"]) == files_before


async def test_range_requests_resume_a_download(alice):
    data = bytes(range(256)) * 100
    body = await share(alice, "big.bin", data)
    url = f"/file/get?token={body['token']}"
    response = await alice.get(url, headers={"Range": "bytes=0-9999"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-9999/{len(data)}"
    assert response.headers["Content-Length"] == "10000"
    first = await response.get_data()
    response = await alice.get(url, headers={"Range": "bytes=10000-"})
    assert response.status_code == 206
    assert first + await response.get_data() == data
    response = await alice.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert response.status_code == 416


@pytest.mark.parametrize("token", ["", "nope", "A" * 32, "x" * 500])
async def test_unknown_tokens_are_404_as_json_and_as_a_page(client, token):
    message = await error_of(await client.get(f"/file/get?token={token}", headers=JSON), 404, "not_found")
    assert "link" in message
    response = await client.get(f"/file/get?token={token}", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "This link is not valid" in await response.get_data(as_text=True)
    await error_of(await client.get(f"/file/qr?token={token}", headers=JSON), 404, "not_found")


async def test_get_without_a_token_is_404(client):
    await error_of(await client.get("/file/get", headers=JSON), 404, "not_found")


async def test_qr_code_is_an_svg_of_the_link(alice, client):
    body = await share(alice)
    response = await client.app.test_client().get(f"/file/qr?token={body['token']}")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "private, no-store"
    svg = ElementTree.fromstring(await response.get_data())
    assert svg.tag.endswith("svg")


@pytest.fixture
def expiry_settings(settings):
    settings["EXPIRE_SECONDS"] = 1
    return settings


async def test_expired_links_are_404(expiry_settings, alice):
    body = await share(alice)
    assert (await alice.get(f"/file/get?token={body['token']}")).status_code == 200
    await asyncio.sleep(1.1)
    await error_of(await alice.get(f"/file/get?token={body['token']}", headers=JSON), 404, "not_found")
    await error_of(await alice.get(f"/file/get/{body['token']}", headers=JSON), 404, "not_found")
    await error_of(await alice.get(f"/file/qr?token={body['token']}", headers=JSON), 404, "not_found")


@pytest.fixture
def file_cap_settings(settings):
    settings["MAX_FILES"] = 2
    return settings


async def test_the_file_cap_never_ends_a_link(file_cap_settings, alice, settings):
    links = [await share(alice, f"f{n}.txt", f"file {n}".encode()) for n in range(3)]
    for link in links:
        assert (await alice.get(f"/file/get?token={link['token']}")).status_code == 200
    assert len(stored_files(settings["DATA_DIR"])) == 3


async def test_share_tokens_are_stored_hashed(app, alice, settings):
    body = await share(alice)
    assert body["token"].encode() not in await database_content(app, settings)


async def test_a_file_whose_disk_copy_vanished_is_404_not_500(app, alice, settings):
    body = await share(alice)
    for name in stored_files(settings["DATA_DIR"]):
        (services(app).storage.files_dir / name).unlink()
    await error_of(await alice.get(f"/file/get?token={body['token']}", headers=JSON), 404, "not_found")

