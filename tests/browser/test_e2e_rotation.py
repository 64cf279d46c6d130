"""Revoking a device of an encrypted account, in real Chromium: an enrolled
app rotates on the `e2e` message (epoch 2 with its proof, wrapped to the
remaining devices and the recovery key, not to the revoked phone), the
other accepts the new key as the proof verifies; the tablet reads what is
posted next, live; the phone's epoch-1 key (taken from its key store before
the revoke, as a thief would) opens the old items and not the new one."""
from __future__ import annotations

import base64
import json
import re

from playwright.sync_api import expect

from . import e2e_reference as ref
from .conftest import open_app, register, wait_for
from .test_e2e_enable import enable
from .test_e2e_pairing import READ_KEYS, pair


def test_a_revoke_rotates_the_key_and_the_revoked_device_cannot_read_what_comes_after(
        new_context, username, server, problems):
    laptop = new_context()
    account = register(laptop, username, "Laptop")
    enable(laptop)
    phone, tablet = new_context(), new_context()
    pair(laptop, phone, server)
    pair(laptop, tablet, server)
    laptop_app, tablet_app = open_app(laptop), open_app(tablet)
    laptop_app.fill("#send-text", "before the revoke")
    laptop_app.get_by_role("button", name="Send").first.click()
    expect(tablet_app.locator("#current-text")).to_have_text("before the revoke")
    phone_page = open_app(phone)
    [stolen] = phone_page.evaluate(READ_KEYS)
    assert list(stolen) == ["1"]
    phone_session = phone.request.get("/account/profile").json()["device"]["id"]

    problems.allow(r"401")  # the revoked phone's app finds itself logged out
    # Laptop and tablet both see rotation_needed; the one that posts second is
    # told 409 stale_key, as docs/e2e.md has it, and takes the other's epoch.
    problems.allow(r"409.*/account/e2e/epochs")
    answer = laptop.request.post(f"/account/sessions/{phone_session}/delete")
    assert answer.ok, answer.text()
    # Polled, not awaited as one navigation: the app may start one (a reload
    # on the live `_revoke`) that the redirect to the login page aborts.
    expect(phone_page).to_have_url(re.compile(r"/account/login"))

    # The laptop's app rotated by itself: epoch 2 in its key store, no rotation pending on the server.
    wait_for(laptop_app, """async () => {
        const state = await (await fetch("/account/e2e")).json();
        return state.epoch === 2 && !state.rotation_needed;
    }""")
    current = laptop.request.get("/account/e2e").json()
    assert current["epoch"] == 2 and current["rotation_needed"] is False
    assert len(current["devices"]) == 2
    assert sorted(wrap["epoch"] for wrap in current["wraps"]) == [1, 2]

    laptop_app.fill("#send-text", "after the revoke")
    laptop_app.get_by_role("button", name="Send").first.click()
    expect(tablet_app.locator("#current-text")).to_have_text("after the revoke")
    listed = laptop.request.get("/file/buffer/items").json()["items"]
    old, new = listed[-1], listed[0]
    assert ref.keyid(ref.unb64u(new["key"])) == "2" and ref.keyid(ref.unb64u(old["key"])) == "1"
    ikm1 = ref.items_ikm(base64.b64decode(stolen["1"]), account["id"])
    assert json.loads(ref.decrypt(ikm1, ref.unb64u(old["key"])))["v"] == 1  # the old item: yes
    try:
        ref.decrypt(ikm1, ref.unb64u(new["key"]))
    except Exception:  # http_ece's InvalidTag or ECEException: the epoch-1 key does not open it
        pass
    else:
        raise AssertionError("the revoked phone's key opened an item posted after the revoke")
