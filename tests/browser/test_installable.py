"""The app is installable: Chromium's own checks (over CDP) find no problem,
the manifest says what it should, and the service worker controls the page
while staying out of the API's way."""
from __future__ import annotations

import json

import pytest

from .conftest import DESKTOP, launch_options, open_app, register, wait_controlled, wait_for


@pytest.fixture
def persistent_context(playwright, server, problems, tmp_path):
    """A profile on disk, as an installed app has (installability needs one)."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), base_url=server.base_url, viewport=DESKTOP, **launch_options())
    context.set_default_timeout(10_000)
    problems.watch(context)
    yield context
    problems.check()
    problems.watching = False
    context.close()


def test_installable_with_share_target_and_icons(persistent_context, username, server):
    register(persistent_context, username)
    page = open_app(persistent_context)
    wait_controlled(page)
    cdp = persistent_context.new_cdp_session(page)

    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert errors == [], errors
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["url"] == f"{server.base_url}/manifest.webmanifest"
    assert manifest["errors"] == [], manifest["errors"]
    data = json.loads(manifest["data"])
    assert data["start_url"] == "/" and data["scope"] == "/" and data["display"] == "standalone"
    assert data["name"] and data["short_name"] and data["theme_color"] and data["background_color"]
    assert data["share_target"] == {
        "action": "/share-target",
        "method": "POST",
        "enctype": "multipart/form-data",
        "params": {"title": "title", "text": "text", "url": "url",
                   "files": [{"name": "files", "accept": ["*/*"]}]},
    }
    icons = {(icon["sizes"], icon["type"], icon.get("purpose", "any")) for icon in data["icons"]}
    assert {("192x192", "image/png", "any"), ("512x512", "image/png", "any"),
            ("512x512", "image/png", "maskable"), ("any", "image/svg+xml", "any")} <= icons
    assert {shot["form_factor"] for shot in data["screenshots"]} == {"wide", "narrow"}
    assert data["shortcuts"]
    # Every icon and screenshot the manifest names is there, with its declared size.
    for image in data["icons"] + data["screenshots"]:
        response = persistent_context.request.get(image["src"])
        assert response.status == 200, image["src"]
        assert response.headers["content-type"] == image["type"]
        if image["type"] == "image/png":
            body = response.body()
            width, height = int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")
            assert image["sizes"] == f"{width}x{height}", image["src"]

    # The worker is active at scope / and controls the page.
    state = page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.getRegistration();
        return {scope: registration.scope, state: registration.active.state,
                script: navigator.serviceWorker.controller.scriptURL};
    }""")
    assert state == {"scope": f"{server.base_url}/", "state": "activated",
                     "script": f"{server.base_url}/service-worker.js"}
    # It precached the shell, in one versioned cache.
    cached = page.evaluate("""async () => {
        const names = await caches.keys();
        const cache = await caches.open(names[0]);
        return {names, urls: (await cache.keys()).map((request) => new URL(request.url).pathname)};
    }""")
    assert len(cached["names"]) == 1 and cached["names"][0].startswith("cloudbuffer-shell-")
    assert "/static/style.css" in cached["urls"]
    assert any(url.endswith("/app.js") for url in cached["urls"])
    assert "/manifest.webmanifest" in cached["urls"]


def test_worker_serves_the_shell_but_never_the_api(persistent_context, username):
    register(persistent_context, username)
    page = open_app(persistent_context)
    wait_controlled(page)
    seen = {}
    page.on("response", lambda response: seen.setdefault(response.url.split("?")[0], response.from_service_worker))
    page.reload()
    page.wait_for_selector("#status[data-state=connected]")
    page.fill("#send-text", "through the network")
    page.click("#send-button")
    page.wait_for_selector("#history .history-item")
    wait_for(page, "() => document.querySelector('#current-text')?.textContent === 'through the network'")
    base = page.url.rstrip("/")
    assert seen[f"{base}/static/style.css"] is True
    assert any(url.endswith("/app.js") and from_worker for url, from_worker in seen.items())
    api = {url: from_worker for url, from_worker in seen.items() if "/file/" in url or "/account/" in url}
    assert f"{base}/file/buffer/items" in api
    assert not any(api.values()), api
