"""/healthz, the error shape, and the route policy: every route says whether
it is public, and every route that is not refuses anonymous callers."""
from __future__ import annotations

import pytest
from werkzeug.routing.converters import NumberConverter, UUIDConverter

from tests.blueprints.test_account import error_of
from tests.helpers import BROWSER_ACCEPT

# Quart's own static route serves the CSS and images of the pages.
FRAMEWORK_ENDPOINTS = {"static"}


def dummy_value(converter) -> object:
    """A value the converter accepts: a dummy int for <int:…> (and subclasses), "x" for strings."""
    if isinstance(converter, NumberConverter):
        return 1
    if isinstance(converter, UUIDConverter):
        return "00000000-0000-0000-0000-000000000000"
    return "x"


def route_cases(app):
    """(rule, method, url) for every HTTP route and method of the app."""
    cases = []
    for rule in app.url_map.iter_rules():
        args = {name: dummy_value(converter) for name, converter in rule._converters.items()}
        url = rule.build(args, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            cases.append((rule, method, url))
    return cases


async def test_healthz_reports_db_and_broker(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok"
    assert body["db"] == "ok"
    assert body["broker"] == {"backend": "memory", "status": "ok"}
    assert body["version"]


async def test_every_route_declares_its_policy(app):
    undeclared, both = [], []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in FRAMEWORK_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        protected = getattr(view, "login_required", False) is True
        public = getattr(view, "public", False) is True
        if not (protected or public):
            undeclared.append(rule.rule)
        if protected and public:
            both.append(rule.rule)
    assert undeclared == [], "mark these views @login_required or @public"
    assert both == []
    assert len(list(app.url_map.iter_rules())) > 20  # the walk really saw the app


async def test_every_non_public_route_refuses_anonymous_callers(app):
    checked = 0
    for rule, method, url in route_cases(app):
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in FRAMEWORK_ENDPOINTS or getattr(view, "public", False) or rule.websocket:
            continue
        client = app.test_client()
        response = await client.open(url, method=method, headers={"Accept": "application/json"})
        assert response.status_code == 401, f"{method} {url} answered {response.status_code} without credentials"
        assert await response.get_json() == {
            "error": "unauthorized", "message": "You need to log in (or send an API token) to do that."
        }, f"{method} {url}"
        response = await client.open(url, method=method, headers={"Authorization": "Bearer cb_bogus"})
        assert response.status_code == 401, f"{method} {url} accepted a bogus bearer token"
        checked += 1
    assert checked >= 15


async def test_the_policy_walk_includes_the_buffer_and_the_profile(app):
    protected = {(method, rule.rule) for rule, method, _ in route_cases(app)
                 if getattr(app.view_functions[rule.endpoint], "login_required", False)}
    assert {("GET", "/file/buffer"), ("POST", "/file/buffer"), ("GET", "/account/profile"),
            ("POST", "/file/load"), ("DELETE", "/account/tokens/<int:token_id>")} <= protected
    public = {rule.rule for rule in app.url_map.iter_rules()
              if getattr(app.view_functions[rule.endpoint], "public", False)}
    assert {"/file/get", "/file/get/<token>", "/file/qr", "/healthz", "/account/login"} <= public


async def test_unknown_paths_are_404_json_or_page(client):
    await error_of(await client.get("/nope", headers={"Accept": "application/json"}), 404, "not_found")
    response = await client.get("/nope", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 404 and response.mimetype == "text/html"


async def test_wrong_method_is_405_with_allow(client):
    response = await client.delete("/healthz", headers={"Accept": "application/json"})
    await error_of(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert (await response.get_json())["message"] == "This address does not accept DELETE; it accepts GET, HEAD, OPTIONS."


async def test_a_put_where_post_is_meant_says_how_to_make_curl_send_post(client):
    # `curl -T file URL` uploads with PUT; /file/buffer takes the upload as a POST.
    response = await client.put("/file/buffer", data=b"a log file", headers={"Accept": "application/json"})
    await error_of(response, 405, "method_not_allowed")
    message = (await response.get_json())["message"]
    assert message.startswith("This address does not accept PUT; it accepts GET, HEAD, OPTIONS, POST.")
    assert message.endswith("With curl -T, add -X POST.")


@pytest.mark.parametrize("path", ["/account/login", "/healthz"])
async def test_responses_carry_security_headers(client, path):
    response = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
