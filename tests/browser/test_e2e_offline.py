"""Offline on an encrypted account: the worker's shell (the e2e modules
precached with the rest) opens the app with the network cut, the keys come
from IndexedDB, the last buffer shows decrypted; a text written offline is
queued and, back online, sent encrypted."""
from __future__ import annotations

import json

from playwright.sync_api import expect

from .conftest import items, open_app, register, wait_controlled, wait_page_cached
from .test_e2e_enable import enable


def test_an_encrypted_account_opens_offline_and_sends_what_was_written_there_encrypted(
        new_context, username, problems):
    context = new_context()
    register(context, username)
    enable(context)
    page = open_app(context)
    page.fill("#send-text", "before the tunnel, encrypted")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#current-text")).to_have_text("before the tunnel, encrypted")
    expect(page.locator("#history .history-item")).to_have_count(1)  # the history is what keeps texts offline
    wait_controlled(page)
    wait_page_cached(page)

    problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    problems.allow(r"request failed: GET .*/file/buffer/items\S* net::ERR_ABORTED")  # cut mid-flight
    context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    response = page.reload()
    assert response.from_service_worker and response.status == 200
    expect(page.locator("#status-text")).to_contain_text("Offline")
    expect(page.locator("#current-text")).to_have_text("before the tunnel, encrypted")
    page.fill("#send-text", "written in the tunnel, encrypted later")
    page.click("#send-button")
    expect(page.locator("#toast")).to_contain_text("when the connection is back")

    context.set_offline(False)
    expect(page.locator("#current-text")).to_have_text("written in the tunnel, encrypted later")
    listed = items(context)
    assert len(listed) == 2 and all(item["encrypted"] == "aes128gcm" for item in listed)
    assert "tunnel" not in json.dumps(listed)
