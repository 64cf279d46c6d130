"""docs/api.md documents every route the app answers, and only those."""
from __future__ import annotations

import re
from pathlib import Path

from server import create_app
from server.live import connection as live

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
# `METHOD /path` in backticks, a query string (`?token=…`) ignored.
DOCUMENTED = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)[^`]*`")


def routes(tmp_path) -> set[tuple[str, str]]:
    app = create_app({"DATA_DIR": str(tmp_path)})
    quart_routes = {(method, rule.rule) for rule in app.url_map.iter_rules()
                    for method in rule.methods - {"HEAD", "OPTIONS"}}
    # The live WebSocket is served beside Quart's routes, by the middleware.
    assert isinstance(app.asgi_app, live.LiveSocketsFirst)
    return quart_routes | {("GET", live.LIVE_PATH)}


def test_every_route_is_documented(tmp_path):
    documented = set(DOCUMENTED.findall(API_DOC.read_text()))
    missing = sorted(routes(tmp_path) - documented)
    assert missing == [], "add these routes to docs/api.md as `METHOD /rule`"


def test_no_documented_route_is_stale(tmp_path):
    documented = set(DOCUMENTED.findall(API_DOC.read_text()))
    stale = sorted(documented - routes(tmp_path))
    assert stale == [], "docs/api.md documents routes the app does not have"
