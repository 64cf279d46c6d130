"""Phone polish: what a touch screen is told, Log out in a menu, compact
history rows with thumbnails, the file picker and the upload's progress."""
from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from .conftest import DESKTOP, open_app, register, screenshot
from .test_layout import BIG_PHONE, fill_history
from .test_pages import throttle_uploads

TOUCH = {"viewport": BIG_PHONE, "has_touch": True, "is_mobile": True}


def test_touch_screens_get_no_keyboard_or_drag_tips(new_context, username):
    phone, desktop = new_context(**TOUCH), new_context(viewport=DESKTOP)
    register(phone, username)
    page = open_app(phone)
    expect(page.locator("#send-shortcut")).to_be_hidden()
    # What is shown (innerText), not what the markup holds for other screens.
    expect(page.locator("#send-hint")).to_have_text("Paste & send puts what you copied on all your devices.",
                                                    use_inner_text=True)
    page.goto("/file/load")
    expect(page.get_by_text("Drop a file here")).to_be_hidden()
    # A mouse and keyboard still get them.
    page = desktop.new_page()
    desktop.request.post("/account/login", data={"username": username, "password": "correct horse battery"})
    page.goto("/")
    expect(page.locator("#send-shortcut")).to_be_visible()
    expect(page.locator("#send-hint")).to_contain_text("Ctrl+Enter", use_inner_text=True)
    expect(page.locator("#send-hint")).not_to_contain_text("Paste & send puts", use_inner_text=True)


def test_log_out_is_in_a_menu_not_beside_profile(new_context, username):
    context = new_context(**TOUCH)
    register(context, username)
    page = open_app(context)
    logout = page.get_by_role("button", name="Log out")
    expect(logout).to_be_hidden()
    expect(page.get_by_role("link", name="Profile")).to_be_hidden()
    page.locator(".account-menu summary").click()
    expect(logout).to_be_visible()
    expect(page.get_by_role("link", name="Profile")).to_be_visible()
    logout.click()
    page.wait_for_url("**/account/login")


def test_history_rows_are_compact_with_thumbnails(new_context, server, username):
    context = new_context(**TOUCH)
    register(context, username)
    fill_history(server, context)
    page = open_app(context)
    rows = page.locator("#history .history-item")
    expect(rows).to_have_count(20)
    heights = page.evaluate("() => [...document.querySelectorAll('#history .history-item')].map((r) => r.offsetHeight)")
    assert max(heights) <= 100, heights
    # 20 items in about 2,000 px on a phone (11 used to take 5,400 px of page).
    assert page.locator("#history").bounding_box()["height"] <= 20 * 102
    thumbs = page.locator("#history img.thumb")
    expect(thumbs).to_have_count(4)  # the four PNGs
    # The list is drawn again as each text's body arrives, so a handle taken a
    # moment earlier may be gone: find and scroll in one step inside the page.
    page.evaluate("() => document.querySelector('#history img.thumb').scrollIntoView({block: 'center'})")
    expect(thumbs.first).to_have_js_property("complete", True)
    assert thumbs.first.evaluate("(img) => img.naturalWidth") == 1
    screenshot(page, "history-phone-compact")


def test_the_file_picker_is_a_button_and_progress_tells_speed_and_time_left(new_context, username, problems):
    context = new_context(viewport=DESKTOP)
    register(context, username)
    page = context.new_page()
    page.goto("/file/load")
    choose = page.get_by_text("Choose a file to share")
    expect(choose).to_be_visible()
    assert choose.evaluate("(el) => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert page.locator("#load-file").evaluate("(el) => getComputedStyle(el).opacity") == "0"
    expect(page.get_by_label("Choose a file to share")).to_have_attribute("type", "file")
    throttle_uploads(context, page, 256 * 1024)
    problems.allow(r"request failed: POST .*/file/load net::ERR_ABORTED")  # cancelled below
    with page.expect_file_chooser() as chooser:
        choose.click()
    chooser.value.set_files(files=[{"name": "big.bin", "mimeType": "application/octet-stream",
                                    "buffer": os.urandom(3 * 1024 * 1024)}])
    expect(page.locator("#load-meta")).to_have_text(
        re.compile(r"^\d+ % · [\d.]+ (bytes|KB|MB) of 3\.0 MB · [\d.]+ (bytes|KB|MB)/s · \d+ (s|min) left$"))
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#load-error")).to_have_text("Upload cancelled.")
