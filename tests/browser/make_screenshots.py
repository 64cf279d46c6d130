"""Take the manifest's screenshots (pwa/screenshots/*.png) of the real app.

A development tool, run by hand when the look changes; the PNGs are committed:

    .venv/bin/python -m tests.browser.make_screenshots

It starts `cloudbuffer serve` on a temp data dir, fills a demo account from
two "devices" and photographs the app in Chromium at the sizes the manifest
declares (wide 1280x800, narrow 720x1480 = a 360x740 phone at 2x).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import sync_playwright

from pwa.tools.make_icons import png
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, REPO, SERVER_ENV, login
from tests.live_server import LiveServer

OUT = REPO / "pwa" / "screenshots"


def demo_photo(width: int = 480, height: int = 320) -> bytes:
    """A sunset-ish gradient with a sun, as a stand-in for a photo."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t = y / height
            r, g, b = int(250 - 60 * t), int(170 - 110 * t), int(90 + 90 * t)
            if (x - width * 0.68) ** 2 + (y - height * 0.55) ** 2 < (height * 0.16) ** 2:
                r, g, b = 255, 226, 140
            if y > height * 0.72:
                r, g, b = int(40 + 20 * t), int(60 + 20 * t), int(110 + 30 * t)
            rows += bytes((r, g, b, 255))
    return png(width, height, bytes(rows))


def fill_demo(server: LiveServer) -> str:
    client = httpx.Client(base_url=server.base_url, timeout=10)
    response = client.post("/account/register", json={"username": "sam", "password": PASSWORD})
    response.raise_for_status()
    token = client.post("/account/tokens", json={"name": "Work laptop", "password": PASSWORD}).json()["token"]
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    posts = [
        ("text", None, "https://example.org/trip/itinerary?day=3"),
        ("file", "Quarterly report.pdf", b"%PDF-1.7\n" + b"0" * 480_000),
        ("text", None, "Wi-Fi at the cabin: lakeside-5G / password: otters-love-kelp-42"),
        ("file", "sunset at the lake.png", demo_photo()),
    ]
    for kind, name, body in posts:
        headers = {"X-Data-Type": kind}
        if name:
            headers["X-File-Name"] = quote(name)
        data = body.encode() if isinstance(body, str) else body
        api.post("/file/buffer", headers=headers, content=data).raise_for_status()
    return "sam"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir, LiveServer(Path(data_dir), env=SERVER_ENV) as server:
        username = fill_demo(server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            shots = (("desktop.png", {"width": 1280, "height": 800}, 1, "Desktop"),
                     ("phone.png", {"width": 360, "height": 740}, 2, "Pixel phone"))
            for name, viewport, scale, device in shots:
                context = browser.new_context(base_url=server.base_url, viewport=viewport,
                                              device_scale_factor=scale, color_scheme="light")
                login(context, username, device)
                page = context.new_page()
                page.goto("/")
                page.wait_for_selector("#status[data-state=connected]")
                page.wait_for_selector("img.buffer-image")
                page.wait_for_timeout(500)
                page.screenshot(path=str(OUT / name))
                print("wrote", OUT / name)
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
