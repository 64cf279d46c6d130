""""Add a device" on an encrypted account, in real Chromium (docs/e2e.md,
flow A): the laptop's QR code carries its key in #k= (read from the page:
the link the drawn QR code encodes), the phone joins with its own, both
show the same verification code, and once the person says they match the
phone has the keys: each then sees the other's texts and files live. A
mismatch refuses the phone, which gets nothing; a link whose key was
swapped is refused by the phone before it sends anything."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re

from playwright.sync_api import BrowserContext, Page, expect

from . import e2e_reference as ref
from .conftest import PHONE, open_app, register, wait_connected
from .qr_reader import read_qr
from .test_e2e_enable import enable

# The account keys in this browser's key store, {epoch: base64}, one object per account.
READ_KEYS = """() => new Promise((resolve) => {
    const open = indexedDB.open("cloudbuffer-e2e", 1);
    open.onsuccess = () => {
        const all = open.result.transaction("accounts").objectStore("accounts").getAll();
        all.onsuccess = () => resolve(all.result.filter((r) => !r.username.startsWith("~")).map((r) =>
            Object.fromEntries(Object.entries(r.keys).map(([e, k]) => [e, btoa(String.fromCharCode(...k))]))));
    };
})"""


def show_code(laptop: BrowserContext) -> tuple[Page, str]:
    page = laptop.new_page()
    page.goto("/account/pair")
    page.get_by_role("button", name="Show a code").click()
    qr = page.locator("#pair-qr svg")
    expect(qr).to_be_attached()
    link = qr.get_attribute("data-link")
    assert read_qr(qr) == link  # what the phone's camera reads, the key in #k= and all
    return page, link


def join(phone: BrowserContext, link: str, name: str) -> Page:
    page = phone.new_page()
    page.goto(link)
    page.fill("#pair-device-name", name)
    page.get_by_role("button", name="Join").click()
    return page


def pair(laptop: BrowserContext, phone: BrowserContext, server) -> tuple[Page, Page]:
    page, link = show_code(laptop)
    code = page.locator("#pair-code").inner_text().replace("-", "")
    # The QR code's link: /pair?code=CODE#k=SPKI, the code committing to the key.
    match = re.fullmatch(re.escape(server.base_url) + r"/pair\?code=([0-9A-Z]{10})#k=([A-Za-z0-9_-]+)", link)
    assert match, link
    assert match.group(1) == code == ref.pairing_code(ref.unb64u(match.group(2)))
    phone_page = join(phone, link, "Sam's phone")
    expect(phone_page.locator("#wait-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    expect(page.locator("#pair-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    assert page.locator("#pair-sas").inner_text() == phone_page.locator("#wait-sas").inner_text()
    page.get_by_role("button", name="The codes match: allow").click()
    expect(page.locator("#pair-status")).to_have_text("Sam's phone is now logged in to your account.")
    phone_page.wait_for_url("**/")
    wait_connected(phone_page)
    return page, phone_page


def test_two_browsers_paired_through_the_real_flow_see_each_others_texts_and_files(
        new_context, username, server, tmp_path):
    laptop = new_context(accept_downloads=True)
    register(laptop, username, "Laptop")
    enable(laptop)
    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True, accept_downloads=True)
    pair(laptop, phone, server)

    # The phone registered a device key of its own, attested under the account key.
    state = phone.request.get("/account/e2e").json()
    assert len(state["devices"]) == 2 and state["device"] in [d["device"] for d in state["devices"]]
    assert [wrap["epoch"] for wrap in state["wraps"]] == [1]

    laptop_app = open_app(laptop)
    phone_app = open_app(phone)
    laptop_app.fill("#send-text", "from the laptop: the door code is 4711")
    laptop_app.get_by_role("button", name="Send").first.click()
    expect(phone_app.locator("#current-text")).to_have_text("from the laptop: the door code is 4711")
    phone_app.fill("#send-text", "from the phone: milk")
    phone_app.get_by_role("button", name="Send").first.click()
    expect(laptop_app.locator("#current-text")).to_have_text("from the phone: milk")

    data = os.urandom(5 * (ref.RS - 17) + 4321)
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    phone_app.set_input_files("#file-input", str(path))
    expect(laptop_app.locator("#current-filename")).to_have_text("scan.pdf")
    with laptop_app.expect_download() as info:
        laptop_app.locator("#download-current").click()
    assert hashlib.sha256(info.value.path().read_bytes()).digest() == hashlib.sha256(data).digest()


def test_codes_that_differ_refuse_the_new_device_and_it_gets_no_key(new_context, username, server):
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    page, link = show_code(laptop)
    phone = new_context()
    phone_page = join(phone, link, "Unknown tablet")
    expect(phone_page.locator("#wait-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    page.get_by_role("button", name="They differ: refuse").click()
    expect(page.locator("#pair-status")).to_have_text("Unknown tablet was refused.")
    expect(phone_page.locator("#wait-status")).to_have_text("Your other device refused this one.")
    assert phone.request.get("/account/e2e").status == 401  # not logged in
    assert phone_page.evaluate("""() => new Promise((resolve) => {
        const open = indexedDB.open("cloudbuffer-e2e", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("accounts", {keyPath: "username"});
        open.onsuccess = () => {
            const all = open.result.transaction("accounts").objectStore("accounts").getAll();
            all.onsuccess = () => resolve(all.result.length);
        };
    })""") == 0  # no keys, and the pairing's own key is gone


def test_a_link_whose_key_was_swapped_is_refused_before_anything_is_sent(new_context, username, server, problems):
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    page, link = show_code(laptop)
    other_key = ref.spki(ref.ec.generate_private_key(ref.ec.SECP256R1()).public_key())
    forged = link.split("#k=")[0] + "#k=" + ref.b64u(other_key)
    phone_page = new_context().new_page()
    phone_page.goto(forged)
    phone_page.fill("#pair-device-name", "Mallory")
    with _no_claim(phone_page):
        phone_page.get_by_role("button", name="Join").click()
        expect(phone_page.get_by_role("alert")).to_contain_text("does not match its code")
    expect(page.locator("#pair-status")).to_have_text("Waiting for the new device…")


class _no_claim:
    """Within the block, the page sends no POST /pair."""

    def __init__(self, page: Page) -> None:
        self.page, self.posts = page, []

    def __enter__(self):
        self.listener = lambda request: request.method == "POST" and request.url.endswith("/pair") \
            and self.posts.append(request.url)
        self.page.on("request", self.listener)
        return self

    def __exit__(self, *exc):
        self.page.remove_listener("request", self.listener)
        assert not self.posts, self.posts


def test_keys_not_wrapped_by_the_key_the_code_covered_are_refused_by_the_new_device(
        new_context, username, server, problems):
    """docs/e2e.md: the approval's wraps are made with the enrolled device's
    pairing key. A server that swapped them for wraps of its own to the new
    device's key (here even of the real account key, with a fresh ephemeral
    key) is caught: the new device keeps nothing."""
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    [account_key] = laptop.pages[0].evaluate(READ_KEYS)
    page, link = show_code(laptop)
    phone = new_context()
    phone_page = join(phone, link, "Sam's phone")
    expect(phone_page.locator("#wait-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    phone_spki = bytes(phone_page.evaluate(PAIRING_SPKI))

    def swap_wraps(route) -> None:
        response = route.fetch()
        body = response.json()
        forged = ref.wrap(base64.b64decode(account_key["1"]), 1, phone_spki)
        body["payload"] = json.dumps({"wraps": [{"epoch": 1, "blob": forged}]})
        route.fulfill(response=response, body=json.dumps(body))

    phone_page.route("**/pair/complete", swap_wraps)
    page.get_by_role("button", name="The codes match: allow").click()
    expect(phone_page.locator("#wait-status")).to_contain_text("not sent by the device whose code you compared")
    assert phone_page.evaluate(READ_KEYS) == []  # no account keys on the phone


PAIRING_SPKI = """() => new Promise((resolve) => {
    const open = indexedDB.open("cloudbuffer-e2e", 1);
    open.onsuccess = () => {
        const get = open.result.transaction("accounts").objectStore("accounts").get("~pairing");
        get.onsuccess = () => resolve(Array.from(get.result.spki));
    };
})"""
