"""The app shell as the server serves it: the page at /, the manifest, the
service worker with its precache list, versioned modules and static files."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from server.blueprints import pwa
from tests.conftest import register
from tests.helpers import BROWSER_ACCEPT

HTML = {"Accept": BROWSER_ACCEPT}


async def test_app_page_needs_a_login(client):
    response = await client.get("/", headers=HTML)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login"


async def test_app_page_passes_its_data_through_attributes(client):
    await register(client, "alice")
    response = await client.get("/", headers=HTML)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-cache"
    page = await response.get_data(as_text=True)
    assert 'data-username="alice"' in page
    assert re.search(r'data-device-key="s\d+"', page)
    assert 'data-max-text-bytes="1048576"' in page
    # The CSP allows no inline script, handler or style attribute.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+=", page)
    assert " style=" not in page
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page


async def test_every_page_asset_is_served_with_a_long_cache(client):
    await register(client, "alice")
    page = await (await client.get("/", headers=HTML)).get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="(/(?:static|pwa)/[^"]+)"', page)
    assert any(url.endswith("/app.js") for url in urls)
    assert any("modulepreload" in line and "/live.js" in line for line in page.splitlines())
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable", url


async def test_bare_and_stale_urls_are_revalidated(client):
    for url in ("/static/style.css", "/static/style.css?v=old", "/pwa/icons/icon-192.png",
                "/pwa/js/000000000000/app.js"):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-cache", url


async def test_module_types_and_etags(client):
    url = f"/pwa/js/{pwa.js_version()}/live.js"
    response = await client.get(url)
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    etag = response.headers["ETag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304


@pytest.mark.parametrize("url", [
    "/pwa/js/v1/../../server/config.py", "/pwa/js/v1/nothing.js", "/pwa/tools/make_icons.py",
    "/pwa/service-worker.js", "/pwa/../pyproject.toml", "/pwa/js/v1/app.py",
])
async def test_only_the_app_files_are_served(client, url):
    assert (await client.get(url)).status_code == 404


async def test_manifest(client):
    response = await client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/manifest+json"
    manifest = json.loads(await response.get_data(as_text=True))
    assert manifest["scope"] == "/" and manifest["start_url"] == "/" and manifest["display"] == "standalone"
    assert manifest["share_target"]["action"] == "/share-target"
    assert manifest["share_target"]["params"]["files"] == [{"name": "files", "accept": ["*/*"]}]
    for image in manifest["icons"] + manifest["screenshots"]:
        assert (await client.get(image["src"])).status_code == 200, image["src"]
    for shortcut in manifest["shortcuts"]:
        assert shortcut["url"].startswith("/")


async def test_service_worker_at_the_root_with_its_precache_list(client):
    response = await client.get("/service-worker.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    source = await response.get_data(as_text=True)
    first = source.split("\n")[2]
    shell = json.loads(first.removeprefix("const SHELL = ").removesuffix(";"))
    assert re.fullmatch(r"[0-9a-f]{12}", shell["version"])
    assert f"/pwa/js/{pwa.js_version()}/app.js" in shell["files"]
    # Big uploads work offline-installed too: the vendored tus client is in the shell.
    assert f"/pwa/js/{pwa.js_version()}/vendor/tus.min.js" in shell["files"]
    assert any(url.startswith("/static/style.css?v=") for url in shell["files"])
    assert "/manifest.webmanifest" in shell["files"]
    # Every precached URL exists (one missing file would fail the install).
    for url in shell["files"]:
        assert (await client.get(url)).status_code == 200, url
    # The worker leaves the API alone: only / navigations, shell files and the share target.
    assert "/share-target" in source and "SHELL_PATHS.has(url.pathname)" in source


async def test_worker_version_follows_the_files(client, monkeypatch, tmp_path):
    before = await (await client.get("/service-worker.js")).get_data(as_text=True)
    js = tmp_path / "js"
    js.mkdir()
    for path in pwa.JS_DIR.glob("*.js"):
        (js / path.name).write_bytes(path.read_bytes())
    (js / "app.js").write_text((pwa.JS_DIR / "app.js").read_text() + "\n// changed\n")
    monkeypatch.setattr(pwa, "JS_DIR", js)
    after = await (await client.get("/service-worker.js")).get_data(as_text=True)
    assert before.split("\n")[2] != after.split("\n")[2]


async def test_favicon(client):
    response = await client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"


def test_module_preloads_follow_imports():
    preloads = [url.rsplit("/", 1)[1] for url in pwa.module_preloads("app.js")]
    assert {"live.js", "view.js", "dom.js", "format.js", "upload.js"} <= set(preloads)
    assert "app.js" not in preloads and len(preloads) == len(set(preloads))


def test_pwa_routes_are_public_or_guarded(app):
    """Each route of the blueprint says who may use it (the policy test's rule)."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("pwa."):
            view = app.view_functions[rule.endpoint]
            assert getattr(view, "public", False) or getattr(view, "login_required", False), rule


async def test_worker_version_follows_the_manifest(client, monkeypatch, tmp_path):
    before = await (await client.get("/service-worker.js")).get_data(as_text=True)
    copy = tmp_path / "pwa"
    shutil.copytree(pwa.PWA_DIR, copy)
    (copy / "manifest.webmanifest").write_text((copy / "manifest.webmanifest").read_text().replace(
        '"CloudBuffer"', '"CloudBuffer!"', 1))
    monkeypatch.setattr(pwa, "PWA_DIR", copy)
    after = await (await client.get("/service-worker.js")).get_data(as_text=True)
    assert before.split("\n")[2] != after.split("\n")[2]
