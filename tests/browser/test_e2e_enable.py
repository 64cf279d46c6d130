""""Encrypt my buffer" on the profile, in real Chromium: the password is
asked (a wrong one is refused and says so), the plaintext history is
deleted, and the recovery key is shown once. What the browser made is
checked in Python against docs/e2e.md: the printed recovery key opens the
sealed recovery private key, which unwraps the account key, under which the
device's attestation is right."""
from __future__ import annotations

import re
import sqlite3

from playwright.sync_api import BrowserContext, Page, expect

from . import e2e_reference as ref
from .conftest import PASSWORD, items, register

RECOVERY = re.compile(r"([0-9A-HJKMNP-TV-Z]{4}-){12}[0-9A-HJKMNP-TV-Z]{4}")


def enable(context: BrowserContext) -> tuple[Page, str]:
    """Turns encryption on from the profile; the page and the recovery key shown."""
    page = context.new_page()
    page.goto("/account/profile")
    expect(page.locator("#e2e-state")).to_contain_text("Off")
    page.fill("#e2e-password", PASSWORD)
    page.get_by_role("button", name="Encrypt my buffer").click()
    expect(page.locator("#e2e-recovery")).to_be_visible()
    recovery = page.locator("#e2e-recovery-key").inner_text()
    expect(page.locator("#e2e-state")).to_contain_text("this device has the key (epoch 1)")
    return page, recovery


def test_encrypt_my_buffer_asks_the_password_deletes_the_history_and_shows_the_recovery_key_once(
        new_context, server, username, problems):
    context = new_context()
    account = register(context, username)
    context.request.post("/file/buffer", data="plaintext from before", headers={"X-Data-Type": "text"})
    assert len(items(context)) == 1

    page = context.new_page()
    page.goto("/account/profile")
    expect(page.locator("#e2e-warning")).to_contain_text("Your history is deleted")
    problems.allow(r"403.*/account/e2e/enable")
    page.fill("#e2e-password", "not my password")
    page.get_by_role("button", name="Encrypt my buffer").click()
    expect(page.locator("#e2e-error")).to_contain_text("That is not your password")
    assert context.request.get("/account/e2e").json()["enabled"] is False
    page.close()

    page, recovery = enable(context)
    assert RECOVERY.fullmatch(recovery), recovery
    assert items(context) == []  # the plaintext history is gone
    page.get_by_role("button", name="I have kept it").click()
    expect(page.locator("#e2e-recovery")).to_be_hidden()
    page.reload()
    expect(page.locator("#e2e-state")).to_contain_text("this device has the key")
    expect(page.locator("#e2e-recovery")).to_be_hidden()  # shown once: not after a reload
    assert page.locator("#e2e-recovery-key").inner_text() == ""

    state = context.request.get("/account/e2e").json()
    assert state["enabled"] is True and state["epoch"] == 1 and state["rotation_needed"] is False
    assert [device["device"] for device in state["devices"]] == [state["device"]]
    assert len(state["wraps"]) == 1 and state["wraps"][0]["epoch"] == 1
    # The person's recovery key, as printed, leads to the account key ...
    with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as db:
        (recovery_wrap,) = db.execute("SELECT blob FROM e2e_wraps WHERE user_id = ? AND recipient = 'recovery'",
                                      (account["id"],)).fetchone()
    recovery_private = ref.open_recovery(ref.parse_recovery_key(recovery), state["recovery"]["sealed_private_key"])
    assert ref.spki(recovery_private.public_key()) == ref.unb64u(state["recovery"]["public_key"])
    account_key = ref.unwrap(recovery_wrap, 1, recovery_private)
    # ... under which the device's registration is attested.
    device = state["devices"][0]
    ikm = ref.items_ikm(account_key, account["id"])
    assert device["attest"] == ref.attest(ikm, device["device"], device["public_key"])
