"""docs/pwa.md's screenshots: the app with a demo history, on a phone and a
desktop, light and dark, taken by the tests in real Chromium each run (so
they always show the app as it is). A file is rewritten only when more
than a few pixels changed (antialiasing and a lazy thumbnail vary by a
pixel or two between runs), so an unchanged look leaves git status clean."""
from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, REPO, login
from .make_screenshots import fill_demo

SHOTS = REPO / "docs" / "screenshots"
SIZES = {"phone": ({"width": 390, "height": 844}, {"has_touch": True, "is_mobile": True}),
         "desktop": ({"width": 1440, "height": 900}, {})}


@pytest.fixture(scope="module")
def demo_user(server):
    return fill_demo(server)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_docs_screenshots(new_context, demo_user, size, scheme):
    viewport, device = SIZES[size]
    context = new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1, **device)
    login(context, demo_user, "Pixel phone" if size == "phone" else "Desktop")
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("#status[data-state=connected]")
    expect(page.locator("img.buffer-image")).to_have_js_property("complete", True)
    expect(page.locator("#history .history-item")).to_have_count(4)
    # Only this device online: the devices of the other shots have gone
    # (their sockets closed with their contexts), so every run looks the same.
    expect(page.locator("#devices li")).to_have_count(1, timeout=30_000)
    page.wait_for_timeout(300)  # the last texts and thumbnails painted
    png = page.screenshot()
    assert len(png) > 10_000  # a real picture, not a blank page
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{size}-{scheme}.png"
    if not path.exists() or changed_pixels(context, path.read_bytes(), png) > 0.002:
        path.write_bytes(png)


def changed_pixels(context, old: bytes, new: bytes) -> float:
    """The share of pixels that differ, compared by Chromium on a blank page
    (no CSP there to refuse data: URLs)."""
    page = context.new_page()
    try:
        return page.evaluate("""async ([a, b]) => {
            const load = async (data) => createImageBitmap(await (await fetch(`data:image/png;base64,${data}`)).blob());
            const [one, two] = [await load(a), await load(b)];
            if (one.width !== two.width || one.height !== two.height) return 1;
            const pixels = (image) => {
                const canvas = new OffscreenCanvas(image.width, image.height);
                const context = canvas.getContext("2d");
                context.drawImage(image, 0, 0);
                return context.getImageData(0, 0, image.width, image.height).data;
            };
            const [p, q] = [pixels(one), pixels(two)];
            let differ = 0;
            for (let i = 0; i < p.length; i += 4) {
                if (p[i] !== q[i] || p[i + 1] !== q[i + 1] || p[i + 2] !== q[i + 2]) differ += 1;
            }
            return differ / (p.length / 4);
        }""", [base64.b64encode(old).decode(), base64.b64encode(new).decode()])
    finally:
        page.close()
