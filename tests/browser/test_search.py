"""The history's search box and kind filter: online the server searches
(GET /file/buffer/items?q=&kind=), offline the app searches what it keeps."""
from __future__ import annotations

from urllib.parse import parse_qs, quote, urlparse

from playwright.sync_api import expect

from .conftest import api_token, curl, open_app, register, wait_controlled


def fill(server, context) -> None:
    with curl(server, api_token(context)) as client:
        for headers, body in (({"X-Data-Type": "text"}, "Meeting notes for Tuesday"),
                              ({"X-Data-Type": "file", "X-File-Name": quote("Été à la plage.jpg")}, "jpeg"),
                              ({"X-Data-Type": "text"}, "the Wi-Fi password is ÉTÉ-2026"),
                              ({"X-Data-Type": "file", "X-File-Name": "report.pdf"}, "%PDF")):
            assert client.post("/file/buffer", headers=headers, content=body.encode()).status_code == 201


def previews(page):
    return page.locator("#history .history-item .preview")


def test_search_and_filter_the_history_online_and_offline(new_context, server, username, problems):
    context = new_context()
    register(context, username)
    fill(server, context)
    page = open_app(context)
    history = page.locator("#history .history-item")
    expect(history).to_have_count(4)

    # Online: the server answers the search (texts and filenames, any case).
    with page.expect_response(lambda r: "/file/buffer/items?" in r.url) as answer:
        page.get_by_role("searchbox", name="Search texts and filenames").fill("été")
    assert parse_qs(urlparse(answer.value.url).query) == {"q": ["été"]}
    expect(previews(page)).to_have_text(["the Wi-Fi password is ÉTÉ-2026", "Été à la plage.jpg"])
    expect(page.locator("#history-count")).to_have_text("2 of 4")
    with page.expect_response(lambda r: "kind=file" in r.url):
        page.get_by_role("button", name="Files", exact=True).click()
    expect(previews(page)).to_have_text(["Été à la plage.jpg"])
    expect(page.get_by_role("button", name="Files", exact=True)).to_have_attribute("aria-pressed", "true")
    page.get_by_role("searchbox").fill("nothing like this")
    expect(page.locator("#history-no-match")).to_be_visible()
    expect(history).to_have_count(0)
    # Clearing it all shows the whole history again.
    page.get_by_role("searchbox").fill("")
    page.get_by_role("button", name="All", exact=True).click()
    expect(history).to_have_count(4)
    expect(page.locator("#history-count")).to_have_text("4 items")

    # Offline: the same search runs over the history this device keeps.
    wait_controlled(page)
    problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    problems.allow(r"request failed: GET .*/file/buffer/items\S* net::ERR_ABORTED")
    context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    asked = []
    page.on("request", lambda r: "/file/buffer/items?" in r.url and asked.append(r.url))
    page.get_by_role("searchbox").fill("MEETING")
    expect(previews(page)).to_have_text(["Meeting notes for Tuesday"])
    page.get_by_role("button", name="Texts", exact=True).click()
    page.get_by_role("searchbox").fill("été")
    expect(previews(page)).to_have_text(["the Wi-Fi password is ÉTÉ-2026"])
    assert asked == []
