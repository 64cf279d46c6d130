"""The page a person gets when they open a share link in a browser: name,
size, time left, a preview shown safely, and a Download button; curl and
friends still get the bytes (tests/test_share_links_e2e.py). The evil files'
previews are in test_evil_files.py."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from .conftest import api_token, curl, register
from .test_live_sync import PNG_1PX

PDF = (b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def share(server, token: str, name: str, data: bytes, mime: str) -> dict:
    with curl(server, token) as client:
        response = client.post("/file/load", files={"file": (name, data, mime)}, headers={"Accept": "application/json"})
        assert response.status_code == 201, response.text
        return response.json()


def test_a_browser_gets_a_page_with_a_preview_and_a_download_button(new_context, server, username):
    owner = new_context()
    register(owner, username)
    token = api_token(owner)
    photo = share(server, token, "photo.png", PNG_1PX, "image/png")
    stranger = new_context(accept_downloads=True)  # no account: the link is enough
    page = stranger.new_page()
    page.goto(photo["url"])
    expect(page.get_by_role("heading", name="photo.png")).to_be_visible()
    expect(page.locator(".shared-file .meta")).to_contain_text("70 bytes · image/png · link expires in 2 h")
    expect(page.get_by_role("img", name="Preview of photo.png")).to_have_js_property("naturalWidth", 1)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "photo.png" and download.path().read_bytes() == PNG_1PX


def test_text_video_audio_and_pdf_previews(new_context, server, username):
    owner = new_context()
    register(owner, username)
    token = api_token(owner)
    notes = share(server, token, "notes.txt", "line one\n<b>not bold</b> ✓\n".encode(), "text/plain")
    clip = share(server, token, "clip.webm", b"\x1a\x45\xdf\xa3 not really a video", "video/webm")
    song = share(server, token, "song.ogg", b"OggS not really audio", "audio/ogg")
    slides = share(server, token, "slides.pdf", PDF, "application/pdf")
    archive = share(server, token, "backup.zip", b"PK\x03\x04", "application/zip")
    page = new_context().new_page()

    page.goto(notes["url"])
    expect(page.locator("pre#shared-preview")).to_have_text("line one\n<b>not bold</b> ✓\n")
    page.goto(clip["url"])
    expect(page.locator("video#shared-preview")).to_have_attribute("src", f"/file/get?token={clip['token']}&download=1")
    page.goto(song["url"])
    expect(page.locator("audio#shared-preview")).to_be_attached()
    page.goto(archive["url"])
    expect(page.locator("#shared-no-preview")).to_be_visible()

    # The PDF is framed from the one inline answer (its headers: tests/test_share_links_e2e.py),
    # and Chromium's PDF viewer shows it.
    page.goto(slides["url"])
    expect(page.locator("iframe#shared-preview")).to_have_attribute("title", "Preview of slides.pdf")
    deadline = time.monotonic() + 10
    while not any(frame.url.startswith("chrome-extension://") for frame in page.frames):  # the PDF viewer
        assert time.monotonic() < deadline, [frame.url for frame in page.frames]
        page.wait_for_timeout(100)
    assert [frame.url for frame in page.frames if "preview=1" in frame.url] == [slides["url"] + "&preview=1"]
