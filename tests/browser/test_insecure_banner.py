"""Opened over plain http on a LAN address (not a secure context), every page
says what will not work and how to fix it; on localhost it says nothing."""
from __future__ import annotations

from urllib.parse import urlparse

from playwright.sync_api import expect

from .conftest import CHROMIUM_ARGS, TIMEOUT_MS, launch_options, open_app, register

LAN_NAME = "cloudbuffer.lan"  # resolved to the test server's 127.0.0.1 by Chromium itself


def test_plain_http_on_a_lan_address_shows_the_banner(playwright, server, new_context, username):
    port = urlparse(server.base_url).port
    options = launch_options()
    options["args"] = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1"]
    browser = playwright.chromium.launch(**options)
    try:
        context = browser.new_context(base_url=f"http://{LAN_NAME}:{port}")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto("/account/login")
        assert page.evaluate("() => window.isSecureContext") is False
        banner = page.get_by_role("complementary", name="This is not a secure connection")
        expect(banner).to_be_visible()
        for what in ("install the app", "clipboard", "offline use", "https", "docs/operations.md",
                     "Serving on a LAN or the internet (Caddy)", "http://localhost"):
            expect(banner).to_contain_text(what)
        context.close()
    finally:
        browser.close()

    # On localhost (a secure context) there is no banner.
    context = new_context()
    register(context, username)
    page = open_app(context)
    expect(page.locator("#insecure-banner")).to_be_hidden()
