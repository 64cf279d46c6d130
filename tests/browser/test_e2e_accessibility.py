"""axe-core on the pages of an encrypted account (issue 19): the profile
with the recovery key shown, the app with encrypted items and the share
dialog's device-drawn QR code, the upload page's encrypted link, the
pairing pages with their verification codes, and the encrypted link's
landing page decrypted and without its key. Zero violations."""
from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from . import e2e_reference as ref
from .conftest import DESKTOP, PHONE, axe_violations, open_app, register
from .test_e2e_enable import RECOVERY, enable
from .test_e2e_pairing import join, show_code
from .test_live_sync import PNG_1PX


@pytest.mark.parametrize(("size", "scheme"), [(DESKTOP, "light"), (PHONE, "dark")], ids=["desktop-light", "phone-dark"])
def test_the_encrypted_accounts_pages_have_no_axe_violations(new_context, username, axe_source, size, scheme):
    found: dict[str, list[str]] = {}

    def check(page, name: str) -> None:
        violations = axe_violations(page, axe_source)
        if violations:
            found[name] = violations

    context = new_context(viewport=size, color_scheme=scheme)
    register(context, username)
    profile, recovery = enable(context)
    assert RECOVERY.fullmatch(recovery)
    check(profile, "/account/profile with the recovery key shown")
    profile.reload()
    expect(profile.locator("#e2e-state")).to_contain_text("this device has the key")
    check(profile, "/account/profile, encrypted")

    app = open_app(context)
    app.fill("#send-text", "an encrypted note")
    app.get_by_role("button", name="Send").first.click()
    app.set_input_files("#file-input", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": PNG_1PX}])
    expect(app.locator("#history .history-item")).to_have_count(2)
    check(app, "/ with encrypted items")
    app.locator("#current").get_by_role("button", name="Share link").click()
    expect(app.locator("#share-qr-local svg")).to_be_attached()
    check(app, "/ with an encrypted item's share dialog")
    app.keyboard.press("Escape")

    page = context.new_page()
    page.goto("/file/load")
    page.set_input_files("#load-file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator("#result-qr-local svg")).to_be_attached()
    check(page, "/file/load with an encrypted link made")
    link = page.locator("#result-url").input_value()
    guest = new_context(viewport=size, color_scheme=scheme)
    landing = guest.new_page()
    landing.goto(link)
    expect(landing.locator("#shared-preview")).to_contain_text("hello")
    check(landing, "the encrypted link's landing page")
    landing.goto(link.split("#")[0])
    expect(landing.get_by_role("alert")).to_contain_text("missing its key")
    check(landing, "the encrypted link's landing page without its key")

    shower, qr_link = show_code(context)
    check(shower, "/account/pair with a keyed code")
    joiner = join(new_context(viewport=size, color_scheme=scheme), qr_link, "Tablet")
    expect(joiner.locator("#wait-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    expect(shower.locator("#pair-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    check(joiner, "/pair/wait with the verification code")
    check(shower, "/account/pair with the verification code")

    assert not found, "axe-core violations:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    {v}" for v in violations) for name, violations in found.items())


@pytest.mark.parametrize(("size", "scheme"), [(DESKTOP, "light"), (PHONE, "dark")], ids=["desktop-light", "phone-dark"])
def test_taking_a_code_another_device_shows_has_no_axe_violations(new_context, username, server, axe_source, size,
                                                                   scheme):
    """Flow B's side of "Add a device": a code refused (its alert tied to the
    field), then a new device's request with the verification code."""
    found: dict[str, list[str]] = {}

    def check(page, name: str) -> None:
        violations = axe_violations(page, axe_source)
        if violations:
            found[name] = violations

    context = new_context(viewport=size, color_scheme=scheme)
    register(context, username)
    enable(context)
    page = context.new_page()
    page.goto("/account/pair")
    page.get_by_label("Code the new device shows").fill("too short")
    page.get_by_role("button", name="Check the code").click()
    expect(page.locator("#pair-take-error")).to_contain_text("10 letters and digits")
    check(page, "/account/pair with a code refused")

    spki = ref.spki(ref.ec.generate_private_key(ref.ec.SECP256R1()).public_key())
    opened = httpx.post(server.base_url + "/pair/requests", json={"device_name": "Terminal", "payload": ref.b64u(spki)},
                        timeout=10)
    assert opened.status_code == 201, opened.text
    page.goto(f"{opened.json()['url']}#k={ref.b64u(spki)}")
    expect(page.locator("#pair-sas")).to_have_text(re.compile(r"^[0-9]{3} [0-9]{3}$"))
    expect(page.locator("#pair-take-error")).to_be_hidden()
    check(page, "/account/pair with a new device's request taken")

    assert not found, "axe-core violations:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    {v}" for v in violations) for name, violations in found.items())
