"""Text compression over real HTTP (a real `cloudbuffer serve`): the pages,
CSS, JS and JSON the server writes are gzipped; someone's files, ranges and
the answers that carry a secret never are (BREACH)."""
from __future__ import annotations

import gzip
from urllib.parse import quote

import httpx
import pytest

from server.blueprints.pwa import js_version
from tests.conftest import PASSWORD
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

GZIP = {"Accept-Encoding": "gzip, deflate, br", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def server(live_server_factory):  # noqa: F811
    return live_server_factory(env={"CLOUDBUFFER_RATE_LIMITS": "false"})


def raw(client: httpx.Client, path: str, **headers) -> httpx.Response:
    """The answer as sent: httpx does not decode a streamed body's raw bytes."""
    with client.stream("GET", path, headers={**GZIP, **headers}) as response:
        response.raw_body = b"".join(response.iter_raw())
    return response


def test_pages_css_js_and_json_are_gzipped_and_revalidate(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post("/account/register", json={"username": "alice", "password": PASSWORD}).status_code == 201
        paths = ["/", "/account/profile", "/static/style.css", f"/pwa/js/{js_version()}/app.js",
                 "/service-worker.js", "/openapi.json", "/docs"]
        for path in paths:
            response = raw(client, path)
            assert response.status_code == 200, path
            assert response.headers.get("Content-Encoding") == "gzip", path
            assert "Accept-Encoding" in response.headers.get("Vary", ""), path
            identity = client.get(path, headers={**GZIP, "Accept-Encoding": "identity"})
            assert "Content-Encoding" not in identity.headers, path
            assert gzip.decompress(response.raw_body) == identity.content, path
            assert len(response.raw_body) < len(identity.content) / 2, path
        # The gzipped answer's ETag is weak, and revalidating with it is a 304.
        css = raw(client, "/static/style.css")
        assert css.headers["ETag"].startswith("W/")
        assert client.get("/static/style.css", headers={**GZIP, "If-None-Match": css.headers["ETag"]}).status_code == 304


def test_files_ranges_and_secrets_are_never_compressed(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post("/account/register", json={"username": "bob", "password": PASSWORD}).status_code == 201
        text = "a compressible line of text\n" * 400
        item = client.post("/file/buffer", headers={"X-Data-Type": "file", "X-File-Name": quote("notes.txt")},
                           content=text.encode()).json()
        # Someone's file: as uploaded, whole or in ranges.
        download = raw(client, f"/file/buffer/items/{item['id']}")
        assert download.status_code == 200 and "Content-Encoding" not in download.headers
        assert download.raw_body == text.encode()
        ranged = raw(client, f"/file/buffer/items/{item['id']}", Range="bytes=0-99")
        assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers
        # A ranged request for one of the app's files is not compressed either.
        css = raw(client, "/static/style.css", Range="bytes=0-99")
        assert "Content-Encoding" not in css.headers
        # Answers carrying a new secret: a share link and a token (POST), and
        # the profile page the token form redirects to, which shows it once.
        form = client.post("/account/tokens", data={"name": "x" * 60, "password": PASSWORD},
                           headers={**GZIP, "Accept": "text/html"})
        assert form.status_code == 303, form.text
        shown = client.get(form.headers["Location"], headers={**GZIP, "Accept": "text/html"})
        assert 'id="new-token"' in shown.text
        for response in (
            shown,
            client.post(f"/file/buffer/items/{item['id']}/share", headers=GZIP),
            client.post("/account/tokens", json={"name": "script", "password": PASSWORD}, headers=GZIP),
        ):
            assert response.status_code in (200, 201), response.text
            assert "Content-Encoding" not in response.headers, response.request.url
        share = client.post(f"/file/buffer/items/{item['id']}/share").json()
        # The bytes behind a share link (a browser opening it gets the
        # landing page; ?download=1 is its Download button).
        shared = raw(client, share["url"].replace(server.base_url, "") + "&download=1")
        assert shared.status_code == 200 and "Content-Encoding" not in shared.headers
        assert shared.raw_body == text.encode()
