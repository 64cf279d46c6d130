"""The app on an encrypted account, in real Chromium: what it sends leaves
the browser only as ciphertext (the server's listing has no text, no name),
and it shows, copies, previews, downloads and searches what it decrypted."""
from __future__ import annotations

import hashlib
import json
import os

from playwright.sync_api import expect

from pwa.tools import make_icons

from . import e2e_reference as ref
from .conftest import items, open_app, register
from .test_e2e_enable import enable



def png(width: int, height: int) -> bytes:
    """A real photo-sized PNG (the device makes its preview from it), with pwa/tools' own encoder."""
    row = bytes([0]) + bytes((x % 256, 30, 90, 255)[i] for x in range(width) for i in range(4))
    return make_icons.png(width, height, row * height)


def send_text(page, text: str) -> None:
    page.fill("#send-text", text)
    page.get_by_role("button", name="Send").first.click()


def test_texts_go_out_encrypted_and_show_decrypted(new_context, username):
    context = new_context()
    register(context, username)
    enable(context)
    page = open_app(context)
    send_text(page, "the secret recipe: tomatoes")
    expect(page.locator("#current-text")).to_have_text("the secret recipe: tomatoes")
    [item] = items(context)
    assert item["encrypted"] == "aes128gcm" and item["type"] == "text"
    assert "tomatoes" not in json.dumps(item)
    expect(page.locator("#current-meta")).to_contain_text("encrypted")

    # A second text by POST (the socket closed): encrypted as well.
    page.evaluate("async () => (await import(document.querySelector('script[type=module]').src.replace(/[^/]+$/, 'api.js'))).sendText('posted while closed: cucumbers')")
    expect(page.locator("#current-text")).to_have_text("posted while closed: cucumbers")
    assert all(item["encrypted"] == "aes128gcm" for item in items(context))

    # After a reload: the snapshot and the history decrypt again; search runs here.
    page.reload()
    expect(page.locator("#current-text")).to_have_text("posted while closed: cucumbers")
    expect(page.locator("#history li")).to_have_count(2)
    page.fill("#history-search", "tomato")
    expect(page.locator("#history li")).to_have_count(1)
    expect(page.locator("#history li .preview")).to_have_text("the secret recipe: tomatoes")


def test_files_are_encrypted_with_a_preview_made_here_and_download_decrypted(new_context, username, tmp_path):
    context = new_context(accept_downloads=True)
    register(context, username)
    enable(context)
    page = open_app(context)
    photo = tmp_path / "holiday photo.png"
    photo.write_bytes(png(640, 480))
    blob = tmp_path / "notes.bin"
    blob.write_bytes(os.urandom(3 * (ref.RS - 17) + 999))
    page.set_input_files("#file-input", [str(photo), str(blob)])
    expect(page.locator("#current-filename")).to_have_text("notes.bin")
    expect(page.locator("#history li")).to_have_count(2)
    listed = items(context)
    assert all(item["encrypted"] == "aes128gcm" and "filename" not in item for item in listed)
    assert "holiday" not in json.dumps(listed) and "notes" not in json.dumps(listed)
    # The photo's thumbnail came from the meta blob: a data: URL made on this device.
    thumb = page.locator("#history li[data-type=file] img.thumb")
    expect(thumb).to_have_count(1)
    assert thumb.get_attribute("src").startswith("data:image/webp;base64,")
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("(img) => img.naturalWidth") == 96

    with page.expect_download() as info:
        page.locator("#download-current").click()
    download = info.value
    assert download.suggested_filename == "notes.bin"
    assert hashlib.sha256(download.path().read_bytes()).hexdigest() == hashlib.sha256(blob.read_bytes()).hexdigest()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download holiday photo.png").click()
    assert info.value.path().read_bytes() == photo.read_bytes()
