"""`next` in real Chromium: its own URL parser says where each Location
server/redirects.py gives would take it, and the issue's link, followed by a
person logging in, ends on the site."""
from __future__ import annotations

import random
from urllib.parse import urlsplit

from server.redirects import safe_next
from tests.test_redirects import NASTY, TRICKY

from .conftest import PASSWORD, register

RESOLVE = """([locations, base]) => locations.map(location => {
    try { return new URL(location, base).origin; } catch (error) { return "invalid: " + error; }
})"""


def sample_targets(count: int) -> list[str]:
    """The known spellings and `count` random strings of the characters
    that matter, the same every run."""
    chance = random.Random(14)
    return NASTY + ["".join(chance.choice(TRICKY) for _ in range(chance.randint(1, 12))) for _ in range(count)]


def test_chromium_resolves_every_location_to_the_site(new_context, server):
    page = new_context().new_page()
    page.goto("/account/login")
    site = page.evaluate("location.origin")
    targets = sample_targets(1000)
    raw = page.evaluate(RESOLVE, [[t for t in targets if "\ud800" not in t], page.url])
    # The check can see the attack: these raw values do leave the site.
    assert sum(origin != site for origin in raw) > 20
    assert raw[NASTY.index("/\t/evil.example/")] == "http://evil.example"
    origins = page.evaluate(RESOLVE, [[safe_next(t) for t in targets], page.url])
    assert [t for t, origin in zip(targets, origins) if origin != site] == []


def test_the_issue_link_then_logging_in_stays_on_the_site(new_context, username, server):
    register(new_context(), username)
    page = new_context().new_page()
    for path, button in (("/account/login", "Log in"), ("/account/register", "Create account")):
        name = username if path == "/account/login" else username + "b"
        page.goto(f"{path}?next=/%09/evil.example/")
        page.fill("#username", name)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name=button).click()
        page.wait_for_url(f"{server.base_url}/")
        assert urlsplit(page.url).netloc == urlsplit(server.base_url).netloc
        # Off the app first: its live socket would reconnect without the
        # cookies and log the refusal as a console error.
        page.goto("about:blank")
        page.context.clear_cookies()
