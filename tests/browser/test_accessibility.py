"""axe-core on every page, at phone and desktop sizes, light and dark, with
the dialogs open: zero violations. (axe-core comes from npm, see conftest.)"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PASSWORD, PHONE, api_token, axe_violations, curl, open_app, register
from .test_live_sync import PNG_1PX

SIZES = {"phone": PHONE, "desktop": DESKTOP}


def fill(server, context) -> None:
    """A text, an image and a PDF in the history, and one share link."""
    with curl(server, api_token(context)) as client:
        for headers, body in (({"X-Data-Type": "text"}, b"a note"),
                              ({"X-Data-Type": "file", "X-File-Name": "report.pdf"}, b"%PDF-1.7\n" + b"0" * 500),
                              ({"X-Data-Type": "file", "X-File-Name": "photo.png"}, PNG_1PX)):
            assert client.post("/file/buffer", headers=headers, content=body).status_code == 201


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_every_page_has_no_axe_violations(new_context, server, username, axe_source, problems, size, scheme):
    found: dict[str, list[str]] = {}

    def check(page, name: str) -> None:
        violations = axe_violations(page, axe_source)
        if violations:
            found[name] = violations

    guest = new_context(viewport=SIZES[size], color_scheme=scheme)
    page = guest.new_page()
    for path in ("/account/login", "/account/register"):
        page.goto(path)
        check(page, path)
    # A form answered with an error (the alert is part of the page).
    problems.allow(r"(HTTP 401: POST|status of 401).*/account/login")
    page.goto("/account/login")
    page.fill("#username", username)
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check(page, "/account/login with an error")
    problems.allow(r"(HTTP 404: GET|status of 404).*/no-such-page")
    page.goto("/no-such-page")
    check(page, "the 404 page")
    page.goto("/pair")
    check(page, "/pair (a new device joins)")

    context = new_context(viewport=SIZES[size], color_scheme=scheme)
    register(context, username)
    fill(server, context)
    app = open_app(context)
    expect(app.locator("#history .history-item")).to_have_count(3)
    expect(app.locator("img.buffer-image")).to_be_visible()
    check(app, "/")
    app.locator("#history .history-item").filter(has_text="report.pdf").get_by_role("button", name="Share link").click()
    expect(app.locator("#share-dialog")).to_be_visible()
    check(app, "/ with the share dialog open")
    app.keyboard.press("Escape")

    page = context.new_page()
    page.goto("/file/load")
    check(page, "/file/load")
    page.set_input_files("#load-file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator("#load-result")).to_be_visible()
    check(page, "/file/load with a link made")
    # The person the link is for: logged out, in a browser.
    landing = guest.new_page()
    landing.goto(page.locator("#result-open").get_attribute("href"))
    expect(landing.get_by_role("link", name="Download")).to_be_visible()
    check(landing, "the share link's landing page")

    page.goto("/account/pair")
    page.get_by_role("button", name="Show a code").click()
    expect(page.locator("#pair-qr svg")).to_be_attached()
    check(page, "/account/pair with a code shown")

    page.goto("/account/profile")
    check(page, "/account/profile")
    page.fill("#token-name", "a script")
    page.fill("#token-password", PASSWORD)
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    check(page, "/account/profile with a new token")
    page.goto("/docs")
    check(page, "/docs")

    assert not found, "axe-core violations:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    {v}" for v in violations) for name, violations in found.items())
