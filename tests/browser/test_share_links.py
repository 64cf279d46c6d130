"""Share links in the app, in real Chromium: sharing again shows the same
link, a new one lasts what the person picks, the history lists each file's
live links with the time left, and phones get the native share sheet."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import PHONE, items, open_app, register
from .test_live_sync import PNG_1PX

# Chromium on Linux has no navigator.share; this stands in for the phone's
# share sheet and records what the app handed it.
SHARE_SHEET = """
window.sharedWithSheet = [];
navigator.share = async (data) => { window.sharedWithSheet.push(data); };
navigator.canShare = () => true;
"""


def upload_photo(page) -> None:
    page.set_input_files("#file-input", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": PNG_1PX}])
    expect(page.locator("#current-filename")).to_have_text("photo.png")


def open_share(page) -> str:
    page.get_by_role("button", name="Share link for photo.png").click()
    expect(page.locator("#share-dialog")).to_be_visible()
    expect(page.locator("#share-url")).to_have_value(re.compile("/file/get\\?token="))
    return page.input_value("#share-url")


def test_sharing_again_shows_the_same_link_and_a_new_one_lasts_what_was_picked(new_context, username):
    context = new_context()
    register(context, username)
    page = open_app(context)
    upload_photo(page)

    first = open_share(page)
    assert "/file/get?token=" in first
    expect(page.locator("#share-reused")).to_be_hidden()
    expect(page.locator("#share-left")).to_have_text("expires in 2 h")
    expect(page.locator("#share-native")).to_be_hidden()  # no share sheet on a desktop Chromium
    page.get_by_role("button", name="Close").click()
    row = page.locator("#history .history-item", has_text="photo.png")
    expect(row.locator(".links-note")).to_have_text("Shared · link expires in 2 h")

    assert open_share(page) == first
    expect(page.locator("#share-reused")).to_be_visible()

    page.select_option("#share-lifetime", label="1 day")
    page.get_by_role("button", name="Make a new link").click()
    expect(page.locator("#share-url")).not_to_have_value(first)
    expect(page.locator("#share-left")).to_have_text("expires in 24 h")
    expect(page.locator("#share-reused")).to_be_hidden()
    page.get_by_role("button", name="Close").click()
    expect(row.locator(".links-note")).to_have_text("Shared · 2 links, the last expires in 24 h")
    (photo,) = items(context)
    assert len(photo["links"]) == 2


def test_a_phone_offers_its_share_sheet(new_context, username):
    context = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.add_init_script(SHARE_SHEET)
    register(context, username)
    page = open_app(context)
    upload_photo(page)
    url = open_share(page)
    page.get_by_role("button", name="Share…").click()
    page.wait_for_function("() => window.sharedWithSheet.length === 1")
    assert page.evaluate("window.sharedWithSheet") == [{"title": "photo.png", "url": url}]


def test_a_new_link_can_be_burnt_after_reading(new_context, username):
    import httpx

    context = new_context()
    register(context, username)
    page = open_app(context)
    upload_photo(page)
    first = open_share(page)
    expect(page.locator("#share-downloads-left")).to_be_hidden()
    page.select_option("#share-downloads", label="one download (burn after reading)")
    page.get_by_role("button", name="Make a new link").click()
    expect(page.locator("#share-url")).not_to_have_value(first)
    expect(page.locator("#share-downloads-left")).to_have_text("One download, then the link is gone.")
    burnt = page.input_value("#share-url")
    assert httpx.get(burnt + "&download=1", timeout=10).content == PNG_1PX
    assert httpx.get(burnt + "&download=1", timeout=10).status_code == 404


def test_a_new_link_can_ask_for_a_password(new_context, username, problems):
    problems.allow(r"(HTTP 404: POST|status of 404).*/file/get[?]token=")  # the wrong password, on purpose
    context = new_context()
    register(context, username)
    page = open_app(context)
    upload_photo(page)
    open_share(page)
    expect(page.locator("#share-has-password")).to_be_hidden()
    page.fill("#share-password", "tell no one")
    page.get_by_role("button", name="Make a new link").click()
    expect(page.locator("#share-has-password")).to_be_visible()
    url = page.input_value("#share-url")
    # The recipient, in a browser of their own: asked, refused, let in.
    recipient = new_context().new_page()
    recipient.goto(url)
    expect(recipient.locator("h1")).to_have_text("This link needs a password")
    recipient.fill("#link-password", "guess")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.locator("#link-password-error")).to_be_visible()
    recipient.fill("#link-password", "tell no one")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.locator("h1")).to_have_text("photo.png")


def test_the_upload_page_offers_the_links_limits(new_context, username, tmp_path, problems):
    problems.allow(r"(HTTP 404: POST|status of 404).*/file/get[?]token=")  # the wrong password, on purpose
    context = new_context()
    register(context, username)
    page = context.new_page()
    path = tmp_path / "notes.txt"
    path.write_text("for one reader only\n")
    page.goto("/file/load")
    page.select_option("#load-lifetime", label="10 minutes")
    page.select_option("#load-downloads", label="one download (burn after reading)")
    link = _upload_page_link_chosen(page, path)
    (share,) = context.request.get("/account/profile", headers={"Accept": "application/json"}).json()["shares"]
    assert share["filename"] == "notes.txt" and share["password"] is False
    assert share["max_downloads"] == 1 and share["downloads_left"] == 1
    assert 500 < share["expires_at"] - share["created_at"] <= 600
    stranger = new_context()
    assert stranger.request.get(link + "&download=1").body() == path.read_bytes()
    assert stranger.request.get(link + "&download=1").status == 404  # burnt

    page.goto("/file/load")
    page.fill("#load-password", "between us")
    link = _upload_page_link_chosen(page, path)
    recipient = new_context().new_page()
    recipient.goto(link)
    expect(recipient.locator("h1")).to_have_text("This link needs a password")
    recipient.fill("#link-password", "between us")
    recipient.get_by_role("button", name="Open the link").click()
    expect(recipient.locator("h1")).to_have_text("notes.txt")


def _upload_page_link_chosen(page, path) -> str:
    """The file picked on the page as it is (its options already chosen)."""
    page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible()
    return page.locator("#result-url").input_value()
