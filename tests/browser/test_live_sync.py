"""Two browser contexts logged in as one user are two devices: what one sends
the other shows live, without a reload."""
from __future__ import annotations

import base64
import hashlib
import os
import time

from playwright.sync_api import expect

from .conftest import api_token, curl, items, login, open_app, register, wait_for


def drop_file(page, name: str, data: bytes, mime: str = "application/octet-stream") -> None:
    """Drop a file on the page as a person dragging it from the desktop would."""
    transfer = page.evaluate_handle(
        """([name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [name, base64.b64encode(data).decode(), mime],
    )
    page.dispatch_event("body", "dragenter", {"dataTransfer": transfer})
    expect(page.locator("#drop-overlay")).to_be_visible()
    page.dispatch_event("body", "drop", {"dataTransfer": transfer})


def test_text_sent_on_one_device_shows_on_the_other_within_a_second(new_context, username):
    laptop, phone = new_context(), new_context()
    register(laptop, username, "Laptop")
    login(phone, username, "Phone")
    laptop_page, phone_page = open_app(laptop), open_app(phone)
    expect(phone_page.locator("#devices")).to_contain_text("Laptop")
    expect(phone_page.locator("#devices")).to_contain_text("Phone (this device)")

    laptop_page.fill("#send-text", "hello from the laptop ✓")
    started = time.monotonic()
    laptop_page.keyboard.press("Control+Enter")
    expect(phone_page.locator("#current-text")).to_have_text("hello from the laptop ✓", timeout=1000)
    assert time.monotonic() - started < 1.0
    expect(phone_page.locator("#current-meta")).to_contain_text("from Laptop")
    expect(laptop_page.locator("#send-text")).to_have_value("")
    # The history of both shows it as the current item.
    expect(phone_page.locator("#history .history-item.is-current")).to_contain_text("hello from the laptop")
    expect(laptop_page.locator("#history .history-item")).to_have_count(1)


def test_dropped_file_downloads_on_the_other_device_with_the_same_sha256(new_context, username, tmp_path):
    desktop, phone = new_context(), new_context(accept_downloads=True)
    register(desktop, username, "Desktop")
    login(phone, username, "Phone")
    desktop_page, phone_page = open_app(desktop), open_app(phone)

    data = os.urandom(700 * 1024)
    drop_file(desktop_page, "report final.bin", data)
    expect(phone_page.locator("#current-filename")).to_have_text("report final.bin")
    expect(desktop_page.locator("#drop-overlay")).to_be_hidden()
    expect(phone_page.locator("#current-body")).to_contain_text("700 KB")

    with phone_page.expect_download() as download_info:
        phone_page.click("#download-current")
    download = download_info.value
    assert download.suggested_filename == "report final.bin"
    path = tmp_path / "downloaded"
    download.save_as(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_curl_post_shows_up_on_both_devices(new_context, username, server):
    one, two = new_context(), new_context()
    register(one, username)
    login(two, username)
    token = api_token(one)
    pages = [open_app(one), open_app(two)]

    with curl(server, token) as client:
        response = client.post("/file/buffer", headers={"X-Data-Type": "text"}, content="from a script".encode())
        assert response.status_code == 201
        for page in pages:
            expect(page.locator("#current-text")).to_have_text("from a script")
            expect(page.locator("#current-meta")).to_contain_text("from script")
        response = client.post("/file/buffer", headers={"X-Data-Type": "file", "X-File-Name": "notes%20%C3%A9t%C3%A9.txt"},
                               content=b"file body")
        assert response.status_code == 201
        for page in pages:
            expect(page.locator("#current-filename")).to_have_text("notes été.txt")
            expect(page.locator("#history .history-item")).to_have_count(2)


def test_history_delete_and_share_link(new_context, username):
    one, two = new_context(), new_context()
    register(one, username)
    login(two, username)
    page, other = open_app(one), open_app(two)
    page.fill("#send-text", "first")
    page.click("#send-button")
    expect(other.locator("#current-text")).to_have_text("first")
    page.set_input_files("#file-input", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": PNG_1PX}])
    expect(other.locator("#current-filename")).to_have_text("photo.png")
    # An image gets a preview.
    expect(other.locator("img.buffer-image")).to_have_attribute("alt", "Preview of photo.png")
    expect(other.locator("img.buffer-image")).to_have_js_property("naturalWidth", 1)

    # Share link: a link with its QR code and expiry, and Copy link.
    page.get_by_role("button", name="Share link for photo.png").click()
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    url = page.input_value("#share-url")
    assert "/file/get?token=" in url
    expect(page.locator("#share-expiry")).not_to_be_empty()
    wait_for(page, "() => document.querySelector('#share-qr').naturalWidth > 0")
    page.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Delete the image from the history: both devices fall back to the text
    # once the Undo window (6 s) has passed.
    page.get_by_role("button", name="Delete photo.png").click()
    expect(other.locator("#current-text")).to_have_text("first", timeout=15_000)
    expect(page.locator("#current-text")).to_have_text("first")
    expect(other.locator("#history .history-item")).to_have_count(1)
    assert [item["type"] for item in items(one)] == ["text"]


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_title_shows_what_arrived_while_the_tab_was_hidden(new_context, username, server):
    context = new_context()
    register(context, username)
    token = api_token(context)
    page = open_app(context)
    title = page.title()
    set_hidden = """(hidden) => {
        Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
        Object.defineProperty(document, "visibilityState", {value: hidden ? "hidden" : "visible", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(set_hidden, True)
    with curl(server, token) as client:
        for text in ("one", "two"):
            client.post("/file/buffer", headers={"X-Data-Type": "text"}, content=text.encode())
            expect(page.locator("#current-text")).to_have_text(text)
    expect(page).to_have_title(f"(2) {title}")
    page.evaluate(set_hidden, False)
    expect(page).to_have_title(title)
