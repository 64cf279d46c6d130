"""Devices told apart, in real Chromium: a name asked for at login, last
seen and "this device" on the profile, "Log out all other devices", and a
logged-out device told who did it."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import PASSWORD, login, open_app, register


def test_named_at_login_and_the_others_logged_out_are_told_why(new_context, username):
    setup = new_context()
    register(setup, username, "Old laptop")
    phone, tablet = new_context(), new_context()
    login(phone, username, "Phone")
    login(tablet, username, "Tablet")
    phone_app, tablet_app = open_app(phone), open_app(tablet)

    laptop = new_context()
    page = laptop.new_page()
    page.goto("/account/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.fill("#device-name", "Work laptop")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    page.goto("/account/profile")
    devices = page.get_by_role("region", name="Devices")
    this_one = devices.get_by_role("listitem").filter(has_text="this device")
    expect(this_one).to_contain_text("Work laptop")
    expect(this_one).to_contain_text("last seen just now")
    expect(devices.get_by_role("listitem")).to_have_count(4)

    page.get_by_role("button", name="Log out all other devices").click()
    page.wait_for_url("**/account/profile")
    expect(devices.get_by_role("listitem")).to_have_count(1)
    for app in (phone_app, tablet_app):
        app.wait_for_url("**/account/login")
        expect(app.locator("#revoked-notice")).to_have_text("This device was logged out from Work laptop.")
    # Shown once: a later visit of the login page says nothing.
    phone_app.reload()
    expect(phone_app.locator("#revoked-notice")).to_be_hidden()
    assert setup.request.get("/file/buffer/items").status == 401
