"""Uploaded HTML and SVG files never run script on our origin, opened in
real Chromium through a share link (/file/get: its landing page with the
preview, and ?download=1) or the owner's history.

Downloads are attachments, never sniffed, and carry a sandbox CSP. The
landing page shows an HTML file as escaped text and an SVG through <img>. The
second test removes the attachment header on the way (as a misconfigured
proxy might) so Chromium renders the files inline: the CSP alone must still
stop every script."""
from __future__ import annotations

from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import api_token, curl, register

EVIL_HTML = b"""<!doctype html><html><head><title>harmless</title>
<meta http-equiv="refresh" content="1;url=/pwned-refresh"></head><body>
<script>window.pwned = true; document.title = "pwned"; fetch("/pwned-html-script?c=" + document.cookie);</script>
<img src="/does-not-exist.png" onerror="window.pwned = true; fetch('/pwned-html-onerror')">
<iframe src="javascript:parent.fetch('/pwned-iframe')"></iframe>
</body></html>"""

EVIL_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"
 onload="window.pwned = true; fetch('/pwned-svg-onload')">
<script>window.pwned = true; document.title = "pwned"; fetch("/pwned-svg-script");</script>
<rect width="10" height="10"/></svg>"""


def upload_evil_files(server, token: str) -> dict[str, dict]:
    shares = {}
    with curl(server, token) as client:
        for name, data, mime in (("evil.html", EVIL_HTML, "text/html"), ("evil.svg", EVIL_SVG, "image/svg+xml")):
            response = client.post("/file/load", files={"file": (name, data, mime)},
                                   headers={"Accept": "application/json"})
            assert response.status_code == 201, response.text
            share = response.json()
            item = client.post("/file/buffer", content=data, headers={"X-Data-Type": "file", "X-File-Name": name,
                                                                      "Content-Type": mime})
            assert item.status_code == 201
            shares[name] = {**share, "item_id": item.json()["id"]}
    return shares


def watch_requests(context) -> list[str]:
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))
    return seen


def open_as_download(page, url: str):
    with page.expect_download() as download_info:
        try:
            page.goto(url)
        except PlaywrightError as error:  # Chromium reports the navigation as turned into a download
            assert "Download is starting" in str(error) or "net::ERR_ABORTED" in str(error), error
    return download_info.value


def test_evil_files_download_and_never_run(new_context, server, username, problems):
    problems.allow(r"net::ERR_ABORTED")  # a navigation that became a download
    owner = new_context(accept_downloads=True)
    register(owner, username)
    shares = upload_evil_files(server, api_token(owner))
    stranger = new_context(accept_downloads=True)
    for context, urls in ((stranger, [s["url"] + "&download=1" for s in shares.values()]),
                          (owner, [f"{server.base_url}/file/buffer/items/{s['item_id']}" for s in shares.values()])):
        seen = watch_requests(context)
        page = context.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for url in urls:
            download = open_as_download(page, url)
            assert download.suggested_filename in ("evil.html", "evil.svg")
            assert download.path().read_bytes() in (EVIL_HTML, EVIL_SVG)
        page.wait_for_timeout(1500)  # the meta refresh would have fired by now
        assert not [url for url in seen if "/pwned" in url], seen
        assert dialogs == []


def test_the_landing_pages_preview_runs_no_script(new_context, server, username, problems):
    owner = new_context()
    register(owner, username)
    shares = upload_evil_files(server, api_token(owner))
    stranger = new_context()
    seen = watch_requests(stranger)
    page = stranger.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(shares["evil.html"]["url"])
    assert page.locator("#shared-preview").inner_text() == EVIL_HTML.decode()  # its source, as text
    page.goto(shares["evil.svg"]["url"])
    assert page.locator("#shared-preview").evaluate("(img) => img.tagName") == "IMG"
    page.wait_for_function("() => document.querySelector('#shared-preview').complete")
    page.wait_for_timeout(1500)  # a refresh or a script would have fired by now
    assert page.evaluate("() => window.pwned") is None and page.title() != "pwned"
    assert not [url for url in seen if "/pwned" in url], seen
    assert dialogs == []


def test_even_rendered_inline_the_sandbox_runs_no_script(new_context, server, username, problems):
    # The CSP blocks every script and says so in the console; that is the point.
    problems.allow(r"Content Security Policy|Refused to|sandbox|Blocked script execution")
    problems.allow(r"/does-not-exist.png")  # the <img> that would fire onerror
    owner = new_context()
    register(owner, username)
    shares = upload_evil_files(server, api_token(owner))
    stranger = new_context()
    seen = watch_requests(stranger)

    def strip_attachment(route):
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-disposition"}
        assert "sandbox" in headers["content-security-policy"]
        route.fulfill(response=response, headers=headers)

    stranger.route("**/file/get*", strip_attachment)
    page = stranger.new_page()
    for name, share in shares.items():
        page.goto(share["url"] + "&download=1")
        page.wait_for_timeout(1500)
        assert page.evaluate("() => window.pwned") is None, name
        assert page.title() != "pwned", name
        # Sandboxed: an opaque origin, so no cookie and no storage of ours.
        assert page.evaluate("() => self.origin") == "null", name
    assert not [url for url in seen if "/pwned" in url], seen
