"""The app's layout as a first day with it meets it: a full history on a
desktop and on a phone, the layout shift measured by the browser itself."""
from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import expect

from .conftest import api_token, curl, open_app, register, screenshot, wait_for
from .test_live_sync import PNG_1PX

BIG_DESKTOP = {"width": 1440, "height": 900}
BIG_PHONE = {"width": 390, "height": 844}

# Registered before any of the page's scripts run, so that every shift since
# the first paint is counted (buffered: true would also do, but this way the
# test does not depend on the size of the browser's buffer).
COUNT_LAYOUT_SHIFTS = """
window.__layoutShift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__layoutShift += entry.value;
}).observe({type: "layout-shift", buffered: true});
"""


def fill_history(server, context, count: int = 20) -> None:
    """`count` items, as scripts post them: texts of every length, files, images."""
    with curl(server, api_token(context)) as client:
        for n in range(count):
            if n % 5 == 1:
                headers = {"X-Data-Type": "file", "X-File-Name": quote(f"photo {n}.png")}
                body = PNG_1PX
            elif n % 5 == 3:
                headers = {"X-Data-Type": "file", "X-File-Name": quote(f"report {n}.pdf")}
                body = b"%PDF-1.7\n" + b"0" * 2000
            else:
                headers = {"X-Data-Type": "text"}
                body = (f"note {n}: " + "a longer line of text that wraps " * (n % 4)).encode()
            assert client.post("/file/buffer", headers=headers, content=body).status_code == 201
        # The newest, in the buffer: a long text, the tallest buffer there is.
        assert client.post("/file/buffer", headers={"X-Data-Type": "text"},
                           content=("line\n" * 80).encode()).status_code == 201


def open_full_app(new_context, server, username, viewport):
    context = new_context(viewport=viewport)
    register(context, username)
    fill_history(server, context)
    context.add_init_script(COUNT_LAYOUT_SHIFTS)
    page = open_app(context)
    expect(page.locator("#history .history-item")).to_have_count(20)
    expect(page.locator("#current-text")).to_contain_text("line")
    # Every text loaded: nothing left to change the layout.
    wait_for(page, "() => ![...document.querySelectorAll('#history .preview')].some((p) => p.textContent === '…')")
    page.wait_for_timeout(300)  # let the last frame paint and report its shifts
    return page


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def test_desktop_keeps_buffer_and_compose_on_the_first_screen(new_context, server, username):
    page = open_full_app(new_context, server, username, BIG_DESKTOP)
    screenshot(page, "layout-desktop-20-items")
    compose, current, history = box(page, ".compose"), box(page, ".current"), box(page, ".history")
    # The buffer and the whole compose box are on the first screen.
    assert current["y"] >= 0 and compose["y"] + compose["height"] <= BIG_DESKTOP["height"], (current, compose)
    assert box(page, "#send-text")["y"] + box(page, "#send-text")["height"] <= BIG_DESKTOP["height"]
    # The history is beside them, not below, and scrolls inside itself.
    assert history["x"] > current["x"] + current["width"] - 1
    assert history["y"] + history["height"] <= BIG_DESKTOP["height"]
    assert page.evaluate("() => { const l = document.querySelector('#history'); return l.scrollHeight > l.clientHeight; }")
    # The page itself does not scroll.
    assert page.evaluate("() => document.documentElement.scrollHeight") <= BIG_DESKTOP["height"]
    shift = page.evaluate("() => window.__layoutShift")
    print(f"layout shift: {shift:.4f}")
    assert shift < 0.1


def test_phone_is_one_column_that_fits_the_width(new_context, server, username):
    page = open_full_app(new_context, server, username, BIG_PHONE)
    screenshot(page, "layout-phone-20-items")
    current, compose, history = box(page, ".current"), box(page, ".compose"), box(page, ".history")
    # One column: the same left edge and width, in the order buffer, compose, history.
    assert current["x"] == compose["x"] == history["x"]
    assert current["width"] == compose["width"] == history["width"]
    assert current["y"] < compose["y"] < history["y"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= BIG_PHONE["width"]
    # The compose box is reachable without scrolling past a long buffer.
    assert compose["y"] < BIG_PHONE["height"]
    shift = page.evaluate("() => window.__layoutShift")
    print(f"layout shift: {shift:.4f}")
    assert shift < 0.1
