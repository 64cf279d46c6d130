"""The clipboard: Copy puts the buffer's text on it, Paste & send reads it."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import login, open_app, register

PERMISSIONS = ["clipboard-read", "clipboard-write"]
PNG_1PX_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_copy_puts_the_text_on_the_clipboard(new_context, username):
    context = new_context(permissions=PERMISSIONS)
    register(context, username)
    page = open_app(context)
    page.fill("#send-text", "copy me, 🙂 please")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#current-text")).to_have_text("copy me, 🙂 please")
    page.click("#copy-current")
    expect(page.locator("#toast")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == "copy me, 🙂 please"

    # From the history too, for an older item whose text the app fetches.
    page.fill("#send-text", "newer")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#current-text")).to_have_text("newer")
    page.locator("#history .history-item").nth(1).get_by_role("button", name="Copy").click()
    expect(page.locator("#toast")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == "copy me, 🙂 please"


def test_paste_and_send_reads_the_clipboard(new_context, username):
    context, other = new_context(permissions=PERMISSIONS), new_context()
    register(context, username)
    login(other, username)
    page, other_page = open_app(context), open_app(other)
    page.evaluate("() => navigator.clipboard.writeText('from the clipboard')")
    page.get_by_role("button", name="Paste & send").click()
    expect(other_page.locator("#current-text")).to_have_text("from the clipboard")


def test_pasting_an_image_sends_it_as_a_file(new_context, username):
    context = new_context()
    register(context, username)
    page = open_app(context)
    # A screenshot pasted with Ctrl+V arrives as a file called image.png.
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "image.png", {type: "image/png"}));
        document.body.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""", PNG_1PX_B64)
    expect(page.locator("#current-filename")).to_have_text(re.compile(r"^pasted-image-\d{8}-\d{6}\.png$"))
    expect(page.locator("img.buffer-image")).to_have_js_property("naturalWidth", 1)
