"""Share links of an encrypted account, in real Chromium: the upload page
encrypts under a fresh key that only the link's #k= carries (and the QR
code drawn on the device), the app's "Share link" hands out the item's own
key the same way; a logged-out browser with the whole link decrypts name,
preview and bytes, and one without the fragment is told the key is missing."""
from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from .conftest import register, open_app
from .qr_reader import read_qr
from .test_e2e_enable import enable


def open_link(context, link: str):
    page = context.new_page()
    page.goto(link)
    return page


def test_an_uploaded_link_decrypts_logged_out_and_says_when_its_key_is_missing(new_context, username, tmp_path):
    owner = new_context()
    register(owner, username)
    enable(owner)
    page = owner.new_page()
    page.goto("/file/load")
    path = tmp_path / "minutes.txt"
    path.write_text("Minutes of the secret meeting\nwe agreed on nothing\n")
    page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible()
    link = page.locator("#result-url").input_value()
    assert re.fullmatch(r".*/file/get\?token=[^#]+#k=[A-Za-z0-9_-]{22}", link), link
    assert page.locator("#result-qr-local svg").get_attribute("data-link") == link
    assert read_qr(page.locator("#result-qr-local svg")) == link  # what a camera reads, fragment and all
    expect(page.locator("#result-qr")).to_be_hidden()
    expect(page.locator("#result-name")).to_have_text("minutes.txt")
    # The server's copy has neither the name nor the words.
    served = owner.request.get(link.split("#")[0] + "&download=1")
    assert served.headers["x-encrypted"] == "aes128gcm"
    assert b"secret meeting" not in served.body() and "minutes" not in str(served.headers)

    stranger = new_context(accept_downloads=True)
    shared = open_link(stranger, link)
    expect(shared.get_by_role("heading", name="minutes.txt")).to_be_visible()
    expect(shared.locator("#shared-details")).to_contain_text("text/plain")
    expect(shared.locator("#shared-preview")).to_contain_text("Minutes of the secret meeting")
    with shared.expect_download() as info:
        shared.get_by_role("button", name="Download").click()
    assert info.value.suggested_filename == "minutes.txt"
    assert info.value.path().read_bytes() == path.read_bytes()

    cut = open_link(new_context(), link.split("#")[0])
    expect(cut.get_by_role("alert")).to_contain_text("This link is missing its key")
    expect(cut.get_by_role("button", name="Download")).to_be_disabled()
    wrong = open_link(new_context(), link.split("#")[0] + "#k=" + "A" * 22)
    expect(wrong.get_by_role("alert")).to_contain_text("does not open this file")


def test_the_apps_share_link_of_an_encrypted_file_carries_its_key(new_context, username, tmp_path):
    owner = new_context()
    register(owner, username)
    enable(owner)
    app = open_app(owner)
    data = os.urandom(200_000)
    path = tmp_path / "backup.tar"
    path.write_bytes(data)
    app.set_input_files("#file-input", str(path))
    expect(app.locator("#current-filename")).to_have_text("backup.tar")
    app.locator("#current").get_by_role("button", name="Share link").click()
    expect(app.locator("#share-url")).to_have_value(re.compile(r"/file/get\?token=[^#]+#k=[A-Za-z0-9_-]{22}$"))
    link = app.locator("#share-url").input_value()
    assert app.locator("#share-qr-local svg").get_attribute("data-link") == link
    assert read_qr(app.locator("#share-qr-local svg")) == link
    expect(app.locator("#share-name")).to_have_text("backup.tar")

    stranger = new_context(accept_downloads=True)
    shared = open_link(stranger, link)
    expect(shared.get_by_role("heading", name="backup.tar")).to_be_visible()
    with shared.expect_download() as info:
        shared.get_by_role("button", name="Download").click()
    assert info.value.path().read_bytes() == data


def test_a_link_with_a_password_keeps_its_key_through_the_password_page(new_context, username, tmp_path, problems):
    # The key lives in the #fragment, which a form's POST and the server's
    # 303 would drop: the password page carries it across, a wrong try too.
    problems.allow(r"(HTTP 404: POST|status of 404).*/file/get[?]token=")  # the wrong password, on purpose
    owner = new_context()
    register(owner, username)
    enable(owner)
    app = open_app(owner)
    data = os.urandom(150_000)
    path = tmp_path / "ledger.bin"
    path.write_bytes(data)
    app.set_input_files("#file-input", str(path))
    expect(app.locator("#current-filename")).to_have_text("ledger.bin")
    app.locator("#current").get_by_role("button", name="Share link").click()
    expect(app.locator("#share-dialog")).to_be_visible()
    app.fill("#share-password", "only for carol")
    app.get_by_role("button", name="Make a new link").click()
    expect(app.locator("#share-has-password")).to_be_visible()
    link = app.locator("#share-url").input_value()
    assert re.search(r"#k=[A-Za-z0-9_-]{22}$", link), link

    recipient = open_link(new_context(accept_downloads=True), link)
    expect(recipient.locator("h1")).to_have_text("This link needs a password")
    recipient.fill("#link-password", "a guess")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.locator("#link-password-error")).to_be_visible()
    recipient.fill("#link-password", "only for carol")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.get_by_role("heading", name="ledger.bin")).to_be_visible()
    with recipient.expect_download() as info:
        recipient.get_by_role("button", name="Download").click()
    assert info.value.path().read_bytes() == data
    assert "#k=" in recipient.url and "unlock=" in recipient.url


def test_the_upload_pages_limits_hold_for_an_encrypted_file(new_context, username, tmp_path, problems):
    # A limit rides in the address of the encrypted POST; a password never
    # does, so a link with one goes over tus, whose metadata carries it.
    owner = new_context()
    register(owner, username)
    enable(owner)
    page = owner.new_page()
    path = tmp_path / "payroll.csv"
    path.write_text("name,salary\ncarol,secret\n")
    page.goto("/file/load")
    page.select_option("#load-downloads", label="3 downloads")
    page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible()
    limited = page.locator("#result-url").input_value()
    page.goto("/file/load")
    page.fill("#load-password", "payday")
    with page.expect_request(lambda r: r.method == "POST" and "/file/uploads" in r.url):
        page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible()
    protected = page.locator("#result-url").input_value()
    shares = sorted(owner.request.get("/account/profile", headers={"Accept": "application/json"}).json()["shares"],
                    key=lambda s: s["created_at"])
    assert [(s["max_downloads"], s["password"]) for s in shares] == [(3, False), (None, True)]

    recipient = open_link(new_context(accept_downloads=True), protected)
    expect(recipient.locator("h1")).to_have_text("This link needs a password")
    recipient.fill("#link-password", "payday")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.get_by_role("heading", name="payroll.csv")).to_be_visible()
    with recipient.expect_download() as info:
        recipient.get_by_role("button", name="Download").click()
    assert info.value.path().read_bytes() == path.read_bytes()
    opened = open_link(new_context(), limited)
    expect(opened.get_by_role("heading", name="payroll.csv")).to_be_visible()
