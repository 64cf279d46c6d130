"""Security headers on every answer: a walk over every GET route (the URL
map, so a new route is covered the day it is added), logged in and not."""
from __future__ import annotations

import re

from server.blueprints.pwa import JS_DIR, js_version
from tests.conftest import register
from tests.e2e_keys import KeyPair
from tests.helpers import BROWSER_ACCEPT, multipart


def directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def check_headers(path: str, response) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), path
    csp = directives(headers.get("Content-Security-Policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], (path, headers.get("Content-Security-Policy"))
    if "script-src" in csp:
        # Only the app's own scripts: no inline code, no eval, no other host.
        assert csp["script-src"] == ["'self'"], path
    else:
        # No script-src: then nothing may run at all.
        assert csp.get("default-src") == ["'none'"], path
    assert "'unsafe-inline'" not in csp.get("default-src", []), path
    if response.headers.get("Content-Disposition", "").startswith("attachment"):
        # Someone's file: sandboxed, nothing of it may run or load.
        assert csp.get("sandbox") == [] and csp.get("default-src") == ["'none'"], path
    elif response.mimetype == "text/html":
        # Our own pages.
        assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'self'"], path
        assert csp.get("base-uri") == ["'self'"] and csp.get("form-action") == ["'self'"], path


# Handlers that choose their own caching, and why it is not no-store.
OWN_CACHING = {
    "pwa.get_app": "private, no-cache",  # the shell: the service worker keeps its own copy for offline use
}


def check_caching(endpoint: str | None, path: str, response) -> None:
    """Nothing that may carry a user's data is ever stored by a cache."""
    cache_control = response.headers.get("Cache-Control", "")
    assert cache_control, path  # every answer says how it may be cached
    if endpoint in OWN_CACHING:
        assert cache_control == OWN_CACHING[endpoint], path
    elif response.mimetype == "application/json" or response.mimetype == "text/html" \
            or response.headers.get("Content-Disposition", "").startswith("attachment"):
        assert "no-store" in cache_control, (path, cache_control)


async def walk(app, client):
    """(endpoint, path, response) for every GET route of the URL map, logged
    in and anonymous, as a browser and as a script, and for error answers."""
    await register(client, "alice")
    text = await client.post("/file/buffer", data=b"hello", headers={"X-Data-Type": "text"})
    body, content_type = multipart([("file", "evil.html", b"<script>alert(1)</script>", "text/html")])
    upload = await client.post("/file/load", data=body,
                               headers={"Accept": "application/json", "Content-Type": content_type})
    share = await upload.get_json()
    item_id = (await text.get_json())["id"]
    module = sorted(JS_DIR.glob("*.js"))[0].name
    pairing = await (await client.post("/account/pairings")).get_json()
    # A device claiming the code: its claim cookie lets /pair/status answer.
    claimed = await client.post("/pair", json={"code": pairing["code"], "device_name": "phone"})
    assert claimed.status_code == 201
    # A new device's request with a key (docs/e2e.md): /pair/payload answers for its code.
    requested = await app.test_client().post("/pair/requests", json={"device_name": "tablet",
                                                                      "payload": KeyPair().public_b64u})
    assert requested.status_code == 201
    request_code = (await requested.get_json())["code"]
    resumable = await client.post("/file/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "5",
                                                             "Upload-Metadata": "filename YS5iaW4="})
    assert resumable.status_code == 201
    values = {"item_id": item_id, "token": share["token"], "version": js_version(), "name": module,
              "filename": "icons/icon.svg", "session_id": 1, "token_id": 1, "share_id": 1,
              "pairing_id": pairing["id"], "upload_id": resumable.headers["Location"].rsplit("/", 1)[1]}
    values_for = {"static": {"filename": "style.css"}}

    answers = []
    for rule in app.url_map.iter_rules():
        if rule.websocket or "GET" not in rule.methods:
            continue
        arguments = {name: values_for.get(rule.endpoint, {}).get(name, values[name]) for name in rule.arguments}
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(arguments[m.group(1)]), rule.rule)
        if rule.endpoint in ("files.get_file", "files.get_qr"):
            path += f"?token={share['token']}"
        if rule.endpoint == "pairing.get_shown_payload":
            path += f"?code={request_code}"
        for accept in (BROWSER_ACCEPT, "application/json"):
            response = await client.get(path, headers={"Accept": accept})
            assert response.status_code < 400, (path, response.status_code)
            answers.append((rule.endpoint, path, response))
            anonymous = await app.test_client().get(path, headers={"Accept": accept})
            answers.append((rule.endpoint if anonymous.status_code < 300 else None, path, anonymous))
    assert len({path for _, path, _ in answers}) >= 20
    # Error answers, pages and JSON alike.
    for path in ("/nowhere", "/file/get?token=nope", "/file/buffer/items/999"):
        for accept in (BROWSER_ACCEPT, "application/json"):
            response = await client.get(path, headers={"Accept": accept})
            assert response.status_code == 404
            answers.append((None, path, response))
    return answers


async def test_every_get_route_sends_the_security_headers(app, client):
    for endpoint, path, response in await walk(app, client):
        check_headers(path, response)
        check_caching(endpoint, path, response)
        assert "Strict-Transport-Security" not in response.headers, path  # not https


async def test_the_profile_page_and_json_with_a_users_data_are_no_store(alice):
    for path, accept in (("/account/profile", BROWSER_ACCEPT), ("/file/buffer/items", "application/json"),
                         ("/account/profile", "application/json")):
        response = await alice.get(path, headers={"Accept": accept})
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", path


async def test_https_public_url_sends_strict_transport_security_on_every_answer(settings, tmp_path):
    from server import create_app

    settings.update(PUBLIC_URL="https://cb.example", SECURE_COOKIES=False)  # the test client speaks http
    app = create_app(settings)
    async with app.test_app():
        for endpoint, path, response in await walk(app, app.test_client()):
            assert response.headers.get("Strict-Transport-Security") == "max-age=63072000; includeSubDomains", path
