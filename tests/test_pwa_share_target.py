"""POST /share-target on the server: the path taken when no service worker
caught the share (the worker's path is tested in tests/browser)."""
from __future__ import annotations

import pytest

from tests.conftest import register
from tests.helpers import BROWSER_ACCEPT, multipart
from server.services import services

# What Chrome sends for a share from the OS share sheet: a navigation with
# no initiating site.
OS_SHARE = {"Accept": BROWSER_ACCEPT, "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Origin": "null"}


async def share(client, parts, headers=OS_SHARE):
    body, content_type = multipart(parts)
    return await client.post("/share-target", data=body, headers={**headers, "Content-Type": content_type})


async def items(client):
    return (await (await client.get("/file/buffer/items")).get_json())["items"]


async def test_text_and_two_files_become_three_items(client):
    await register(client, "alice")
    response = await share(client, [
        ("title", "A page"), ("text", "Look at this"), ("url", "https://example.org/x"),
        ("files", "one.txt", b"first", "text/plain"), ("files", "two.png", b"\x89PNG second", "image/png"),
    ])
    assert response.status_code == 303
    assert response.headers["Location"] == "/?shared=3"
    got = await items(client)
    assert [(item["type"], item.get("filename")) for item in got] == [
        ("file", "two.png"), ("file", "one.txt"), ("text", None)]
    assert got[0]["mime"] == "image/png"
    text = await client.get(f"/file/buffer/items/{got[2]['id']}")
    assert await text.get_data(as_text=True) == "Look at this\nhttps://example.org/x"
    current = await client.get("/file/buffer")
    assert await current.get_data() == b"\x89PNG second"


async def test_a_share_with_no_file_skips_the_empty_file_part(client):
    await register(client, "alice")
    response = await share(client, [("text", "just text"), ("files", "", b"")])
    assert response.headers["Location"] == "/?shared=1"
    assert [item["type"] for item in await items(client)] == ["text"]


async def test_a_nameless_file_gets_a_name(client):
    await register(client, "alice")
    await share(client, [("files", "", b"data")])
    assert (await items(client))[0]["filename"] == "shared-file"


async def test_json_callers_get_the_items(client):
    await register(client, "alice")
    response = await share(client, [("text", "hi")], headers={"Accept": "application/json"})
    assert response.status_code == 201
    assert [item["type"] for item in (await response.get_json())["items"]] == ["text"]


async def test_logged_out_is_sent_to_log_in(client):
    response = await share(client, [("text", "lost")])
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login?next=/&shared=lost"
    page = await (await client.get(response.headers["Location"], headers={"Accept": BROWSER_ACCEPT})).get_data(as_text=True)
    assert "share it again" in page


async def test_logged_out_json_is_401(client):
    response = await share(client, [("text", "x")], headers={"Accept": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "none"},
    {},
])
async def test_the_share_sheet_and_the_app_are_not_refused_as_cross_site(client, headers):
    await register(client, "alice")
    response = await share(client, [("text", "ok")], headers={"Accept": BROWSER_ACCEPT, **headers})
    assert response.status_code == 303


async def test_another_site_cannot_post_a_share(client):
    await register(client, "alice")
    response = await share(client, [("text", "csrf")],
                           headers={"Accept": BROWSER_ACCEPT, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert await items(client) == []


async def test_a_broken_body_stores_nothing(client, app):
    await register(client, "alice")
    body, content_type = multipart([("text", "t"), ("files", "a.bin", b"x" * 1000)])
    response = await client.post("/share-target", data=body[:-40],
                                 headers={**OS_SHARE, "Content-Type": content_type})
    assert response.status_code == 400
    assert await items(client) == []
    assert list((services(app).settings.data_dir / "tmp").iterdir()) == []


async def test_get_goes_to_the_app(client):
    response = await client.get("/share-target")
    assert response.status_code == 303 and response.headers["Location"] == "/"
