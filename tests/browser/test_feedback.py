"""Feedback that is seen: errors brought into view and focused, renames and
deletes confirmed, a delete that can be undone for a few seconds."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from .conftest import PHONE, items, login, open_app, register


def in_view_and_focused(page, selector: str) -> bool:
    return page.evaluate("""(selector) => {
        const element = document.querySelector(selector);
        const box = element.getBoundingClientRect();
        return document.activeElement === element && box.top >= 0 && box.bottom <= innerHeight;
    }""", selector)


def test_the_wrong_password_error_is_scrolled_into_view_and_focused(new_context, username, problems):
    context = new_context(viewport=PHONE)
    register(context, username)
    page = context.new_page()
    page.goto("/account/profile")
    page.fill("#current-password", "not my password")
    page.fill("#new-password", "a new password here")
    problems.allow(r"(HTTP 403: POST|status of 403).*/account/password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_contain_text("current password is not right")
    assert page.evaluate("() => document.documentElement.scrollHeight") > PHONE["height"] * 2  # far down the page
    assert in_view_and_focused(page, "#password-error")


def test_rename_and_revoke_say_what_happened(new_context, username):
    context, phone = new_context(viewport=PHONE), new_context()
    register(context, username, "Laptop")
    login(phone, username, "Old phone")
    page = context.new_page()
    page.goto("/account/profile")
    devices = page.get_by_role("region", name="Devices")
    devices.get_by_label("New name for Old phone").fill("Pixel")
    devices.get_by_role("listitem").filter(has_text="Old phone").get_by_role("button", name="Rename").click()
    expect(page.locator("#profile-notice")).to_have_text("Device renamed.")
    assert in_view_and_focused(page, "#profile-notice")
    expect(devices).to_contain_text("Pixel")
    page.get_by_role("button", name="Revoke Pixel").click()
    expect(page.locator("#profile-notice")).to_have_text("Device revoked: it is logged out.")
    # A reload of the bare page says nothing more.
    page.goto("/account/profile")
    expect(page.locator("#profile-notice")).to_have_count(0)


def test_delete_offers_undo_and_deletes_only_after_the_window(new_context, username):
    context = new_context()
    register(context, username)
    for text in ("keep me", "delete me"):
        assert context.request.post("/file/buffer", headers={"X-Data-Type": "text"}, data=text).status == 201
    page = open_app(context)
    history = page.locator("#history .history-item")
    expect(history).to_have_count(2)
    keep = history.filter(has_text="keep me")

    # Undo: the item comes back and the server never deleted it.
    keep.get_by_role("button", name="Delete").click()
    expect(history).to_have_count(1)
    expect(page.locator("#toast")).to_contain_text("Deleted the text.")
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(history).to_have_count(2)
    expect(page.locator("#toast")).to_contain_text("Restored the text.")
    time.sleep(7)  # past the window: an undone delete stays undone
    assert len(items(context)) == 2

    # No Undo: deleted on the server once the window has passed.
    history.filter(has_text="delete me").get_by_role("button", name="Delete").click()
    expect(history).to_have_count(1)
    assert len(items(context)) == 2  # not yet
    expect(page.locator("#current-text")).to_have_text("keep me", timeout=15_000)
    assert [item["size"] for item in items(context)] == [len("keep me")]
