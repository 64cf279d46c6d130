"""The server-rendered pages: they render, show what they are given and keep
to the CSP (no inline scripts, handlers or styles)."""
from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD, register
from tests.helpers import BROWSER_ACCEPT, multipart

HTML = {"Accept": BROWSER_ACCEPT}


def assert_csp_clean(page: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handler"
    assert not re.search(r"\sstyle\s*=", page), "style attribute"


@pytest.mark.parametrize("path", ["/account/login", "/account/register", "/account/registet"])
async def test_guest_pages(client, path):
    response = await client.get(path, headers=HTML)
    page = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert_csp_clean(page)
    assert 'name="next" value="/"' in page
    assert "/account/login" in page and "/account/register" in page  # each links to the other


async def test_login_error_is_shown_on_the_form(client):
    await register(client, "alice")
    await client.post("/account/logout", headers=HTML)
    response = await client.post("/account/login", form={"username": "alice", "password": "wrong password", "next": "/file/load"},
                                 headers=HTML)
    page = await response.get_data(as_text=True)
    assert response.status_code == 401
    assert 'role="alert"' in page and "do not match" in page
    assert 'value="alice"' in page and 'name="next" value="/file/load"' in page


async def test_register_error_is_shown_on_the_form(client):
    response = await client.post("/account/register", form={"username": "x", "password": "long enough"}, headers=HTML)
    page = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'role="alert"' in page and 'value="x"' in page


async def test_signed_in_pages_share_the_header(client):
    await register(client, "alice")
    for path in ("/", "/account/profile", "/file/load"):
        page = await (await client.get(path, headers=HTML)).get_data(as_text=True)
        assert_csp_clean(page)
        for link in ('href="/"', 'href="/file/load"', 'href="/account/profile"', 'action="/account/logout"'):
            assert link in page, (path, link)
        assert page.count('aria-current="page"') == 1, path


async def test_profile_shows_a_new_token_once(client):
    await register(client, "alice")
    response = await client.post("/account/tokens", form={"name": "backup", "password": PASSWORD}, headers=HTML)
    page = await response.get_data(as_text=True)
    token = re.search(r'id="new-token"[^>]*>(cb_[^<]+)<', page).group(1)
    assert "will not be shown again" in page and 'data-copy-from="new-token"' in page
    again = await (await client.get("/account/profile", headers=HTML)).get_data(as_text=True)
    assert token not in again and "backup" in again


async def test_profile_storage_meter_and_this_device(client):
    await register(client, "alice")
    await client.post("/file/buffer", data=b"x" * 2048, headers={"X-Data-Type": "file", "X-File-Name": "a.bin"})
    page = await (await client.get("/account/profile", headers=HTML)).get_data(as_text=True)
    assert re.search(r'<meter id="storage-meter"[^>]*value="2048"', page)
    assert "2.0 KB of 5.0 GB used" in page
    assert "this device" in page


async def test_link_page_has_the_qr_inline_without_the_xml_prolog(client):
    await register(client, "alice")
    body, content_type = multipart([("file", "a.txt", b"hello")])
    response = await client.post("/file/load", data=body, headers={**HTML, "Content-Type": content_type})
    page = await response.get_data(as_text=True)
    assert response.status_code == 201
    assert_csp_clean(page)
    assert "<svg" in page and "<?xml" not in page
    assert re.search(r'id="share-url" value="http://[^"]+/file/get\?token=', page)


async def test_load_page_data(client):
    await register(client, "alice")
    page = await (await client.get("/file/load", headers=HTML)).get_data(as_text=True)
    assert 'data-max-bytes="1073741824"' in page and 'enctype="multipart/form-data"' in page
    assert 'name="file"' in page


async def test_error_page(client):
    response = await client.get("/no/such/page", headers=HTML)
    page = await response.get_data(as_text=True)
    assert response.status_code == 404
    assert_csp_clean(page)
    assert "Not found" in page and "Back to CloudBuffer" in page
