"""The pages around the app — log in, register, profile, upload & share —
and the app's own look: phone and desktop, dark mode, keyboard."""
from __future__ import annotations

import hashlib
import os

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PASSWORD, PHONE, login, open_app, register, screenshot, wait_for


def throttle_uploads(context, page, bytes_per_second: int) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second})


def test_register_log_out_and_log_in_with_the_forms(new_context, username, problems):
    page = new_context().new_page()
    page.goto("/")
    page.wait_for_url("**/account/login")
    page.get_by_role("link", name="Create an account").click()
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/account/login")
    # A wrong password: the form says so, keeps the username, answers 401.
    problems.allow(r"HTTP 401: POST .*/account/login")
    problems.allow(r"status of 401 .*/account/login")
    page.fill("#username", username)
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page.locator("#username")).to_have_value(username)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def test_profile_devices_tokens_and_storage(new_context, username):
    context, phone = new_context(permissions=["clipboard-read", "clipboard-write"]), new_context()
    register(context, username, "Work laptop")
    login(phone, username, "Phone")
    page = context.new_page()
    page.goto("/account/profile")
    devices = page.get_by_role("region", name="Devices")
    expect(devices.get_by_role("listitem")).to_have_count(2)
    expect(devices.get_by_role("listitem").filter(has_text="this device")).to_contain_text("Work laptop")
    expect(page.locator("#storage-meter")).to_be_attached()

    page.fill("#token-name", "backup script")
    page.fill("#token-password", PASSWORD)  # asked again for a token
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("cb_")
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_role("button", name="Copied!")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    screenshot(page, "profile-desktop")

    # Revoke the phone: its app is sent to the login page at once.
    phone_page = open_app(phone)
    page.goto("/account/profile")
    page.get_by_role("button", name="Revoke Phone").click()
    page.wait_for_url("**/account/profile")
    expect(page.get_by_role("region", name="Devices").get_by_role("listitem")).to_have_count(1)
    phone_page.wait_for_url("**/account/login")
    # The token works for scripts; then revoke it too.
    page.get_by_role("button", name="Revoke token backup script").click()
    expect(page.get_by_role("region", name="API tokens")).to_contain_text("No tokens yet")


def test_upload_page_progress_link_and_qr(new_context, username, server, tmp_path):
    context = new_context()
    register(context, username)
    page = context.new_page()
    page.goto("/file/load")
    data = os.urandom(3 * 1024 * 1024)
    page.set_input_files("#load-file", files=[{"name": "holiday video.mp4", "mimeType": "video/mp4", "buffer": data}])
    expect(page.locator("#load-result")).to_be_visible()
    expect(page.locator("#result-name")).to_have_text("holiday video.mp4")
    expect(page.locator("#result-size")).to_have_text("3.0 MB")
    url = page.input_value("#result-url")
    assert url.startswith(server.base_url + "/file/get?token=")
    wait_for(page, "() => document.querySelector('#result-qr').naturalWidth > 0")
    response = context.request.get(url)
    assert hashlib.sha256(response.body()).hexdigest() == hashlib.sha256(data).hexdigest()
    screenshot(page, "upload-desktop")
    # The profile lists the link.
    page.goto("/account/profile")
    expect(page.get_by_role("region", name="Share links")).to_contain_text("holiday video.mp4")


def test_upload_page_works_without_javascript(new_context, username, problems):
    context = new_context(java_script_enabled=False)
    # With scripts off Chromium refuses the modulepreload fetches (reported as "csp").
    problems.allow(r"request failed: GET .*/pwa/js/.*\.js csp$")
    register(context, username)
    page = context.new_page()
    page.goto("/file/load")
    page.set_input_files("#load-file", files=[{"name": "plain.txt", "mimeType": "text/plain", "buffer": b"no js"}])
    page.get_by_role("button", name="Upload and get a link").click()
    expect(page.get_by_role("heading", name="Your link is ready")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    assert "/file/get?token=" in page.input_value("#share-url")


def test_app_upload_shows_progress_and_can_be_cancelled(new_context, username, problems):
    context = new_context()
    register(context, username)
    page = open_app(context)
    throttle_uploads(context, page, 256 * 1024)
    problems.allow(r"request failed: POST .*/file/buffer net::ERR_ABORTED")  # the cancelled upload
    page.set_input_files("#file-input", files=[{"name": "big.bin", "mimeType": "application/octet-stream",
                                                "buffer": os.urandom(4 * 1024 * 1024)}])
    row = page.locator(".upload")
    expect(row).to_be_visible()
    wait_for(page, "() => document.querySelector('.upload progress').value > 0")
    expect(row.locator(".meta")).to_contain_text("of 4.0 MB")
    row.get_by_role("button", name="Cancel upload of big.bin").click()
    expect(row).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#history-empty")).to_be_visible()
    assert context.request.get("/file/buffer/items").json()["items"] == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_app_on_a_phone_and_a_desktop(new_context, username, scheme):
    context = new_context(viewport=PHONE, color_scheme=scheme, has_touch=True, is_mobile=True)
    register(context, username, "Phone")
    page = open_app(context)
    page.fill("#send-text", "A note for the phone: the parking spot is on level 3, row F.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#current-text")).to_contain_text("level 3")
    # Nothing sticks out sideways at 360 px.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(15, 18, 23)") == (scheme == "dark"), background
    screenshot(page, f"app-phone-{scheme}")
    page.set_viewport_size(DESKTOP)
    screenshot(page, f"app-desktop-{scheme}")
    for path in ("/account/profile", "/file/load"):
        page.goto(path)
        page.set_viewport_size(PHONE)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], path
        screenshot(page, f"{path.rsplit('/', 1)[1]}-phone-{scheme}")
        page.set_viewport_size(DESKTOP)


def test_app_is_usable_with_the_keyboard(new_context, username):
    context = new_context()
    register(context, username)
    page = open_app(context)
    page.locator("#send-text").focus()
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#current-text")).to_have_text("typed without a mouse")
    expect(page.locator("#history .history-item")).to_have_count(1)
    # Tab order, from the top, reaches everything: the buffer's Copy, the
    # composer, the history's buttons; each has a name.
    page.evaluate("() => document.activeElement.blur()")
    names = []
    for _ in range(20):
        page.keyboard.press("Tab")
        names.append(page.evaluate("""() => {
            const el = document.activeElement;
            return el === document.body ? "(body)" : (el.getAttribute("aria-label") || el.textContent.trim() || el.id);
        }"""))
    for wanted in ("Skip to content", "Log out", "Copy", "Send Ctrl+Enter", "Paste & send", "Send files…",
                   "Delete text from just now"):
        assert wanted in names, (wanted, names)
    # Every button and link has an accessible name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll("button, a, input, textarea")]
        .filter((el) => !el.hidden && !(el.getAttribute("aria-label") || el.textContent.trim() || el.labels?.length))
        .map((el) => el.outerHTML)""")
    assert unnamed == []
