""""Add a device" in real Chromium: the phone opens the QR code's link, names
itself and waits; the laptop sees the name and allows it; the phone is then
logged in to the same account without a password."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import PHONE, open_app, register, wait_connected


def show_code(laptop):
    page = laptop.new_page()
    page.goto("/account/profile")
    page.get_by_role("link", name="Add a device").click()
    page.get_by_role("button", name="Show a code").click()
    expect(page.locator("#pair-qr svg")).to_be_attached()
    return page


def test_a_phone_joins_by_the_qr_link_once_the_laptop_allows_it(new_context, username, problems):
    laptop = new_context()
    register(laptop, username, "Laptop")
    page = show_code(laptop)
    code = page.locator("#pair-code").inner_text()
    assert len(code) == 11 and code[5] == "-"

    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone_page = phone.new_page()
    phone_page.goto(f"/pair?code={code.replace('-', '')}")  # what the QR code holds
    phone_page.fill("#pair-device-name", "Sam's phone")
    phone_page.get_by_role("button", name="Join").click()
    expect(phone_page.locator("#wait-status")).to_contain_text("Waiting for your other device")

    expect(page.locator("#pair-request")).to_contain_text("Sam's phone wants to join your account.")
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#pair-status")).to_have_text("Sam's phone is now logged in to your account.")

    phone_page.wait_for_url("**/")
    wait_connected(phone_page)
    expect(phone_page.locator("#devices")).to_contain_text("Sam's phone (this device)")
    profile = phone.request.get("/account/profile").json()
    assert profile["username"] == username
    assert sorted(device["name"] for device in profile["devices"]) == ["Laptop", "Sam's phone"]

    # The code was used up: typing it again on another device is refused.
    problems.allow(r"404")
    other = new_context().new_page()
    other.goto("/pair")
    other.fill("#pair-code", code.lower())
    other.fill("#pair-device-name", "Intruder")
    with other.expect_response("**/pair") as answer:
        other.get_by_role("button", name="Join").click()
    assert answer.value.status == 404
    expect(other.get_by_role("alert")).to_contain_text("That code is not valid")


def test_a_refused_device_is_told_and_not_logged_in(new_context, username):
    laptop = new_context()
    register(laptop, username, "Laptop")
    page = show_code(laptop)
    code = page.locator("#pair-code").inner_text()
    phone_page = new_context().new_page()
    phone_page.goto("/pair")
    phone_page.fill("#pair-code", code)
    phone_page.fill("#pair-device-name", "Unknown tablet")
    phone_page.get_by_role("button", name="Join").click()
    expect(page.locator("#pair-device")).to_have_text("Unknown tablet")
    page.get_by_role("button", name="Refuse").click()
    expect(page.locator("#pair-status")).to_have_text("Unknown tablet was refused.")
    expect(phone_page.locator("#wait-status")).to_have_text("Your other device refused this one.")
    assert phone_page.context.request.get("/file/buffer/items").status == 401
    open_app(laptop)  # the laptop is still fine
