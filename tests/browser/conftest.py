"""Real-browser tests: Debian's Chromium driven by Playwright against the real
server (`cloudbuffer serve`, 2 workers, a private Redis).

One server, Redis and browser serve the whole package (starting them is the
slow part); each test gets fresh browser contexts and fresh users, so tests
cannot see each other. Every context is watched: a console error, an
uncaught exception, a failed request or an HTTP error answer fails the test
unless the test declared it expected (`problems.allow(...)`).

Chromium must be at /usr/bin/chromium (.ci/run installs Debian's package);
without it these tests fail — they are never skipped. `playwright install`
is never needed or used.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.live_server import LiveServer
from tests.redis_server import RedisServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parent.parent.parent
OUTPUT = REPO / "test-output"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
TIMEOUT_MS = 10_000
SERVER_ENV = {"CLOUDBUFFER_RATE_LIMITS": "false"}


def launch_options() -> dict:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); "
                    "browser tests are never skipped", pytrace=False)
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="package")
def redis_url():
    server = RedisServer()
    server.start()
    yield server.url
    server.cleanup()


@pytest.fixture(scope="package")
def server(tmp_path_factory, redis_url):
    # Rate limits are tested elsewhere; here every test signs up from 127.0.0.1.
    live = LiveServer(tmp_path_factory.mktemp("browser-data"), workers=2, redis_url=redis_url, env=SERVER_ENV)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="package")
def playwright():
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="package")
def browser(playwright, server):
    # Depends on the server so that the server stops first, with the
    # browser's sockets still open, as a real restart would find them.
    browser = playwright.chromium.launch(**launch_options())
    yield browser
    browser.close()


class BrowserProblems:
    """Everything that went wrong in the watched contexts."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.watching = True
        self.started: dict = {}  # request → when it started
        self.navigated: dict = {}  # page → when its last main-frame navigation started or committed
        self.aborted: list[tuple] = []  # (problem, page, started), judged in check()

    def allow(self, pattern: str) -> None:
        """Expect problems matching this regex (e.g. an aborted upload)."""
        self.allowed.append(re.compile(pattern))

    def add(self, problem: str) -> None:
        if self.watching and not any(p.search(problem) for p in self.allowed):
            self.found.append(problem)

    def watch(self, context: BrowserContext) -> None:
        context.on("console", lambda m: m.type == "error" and self.add(f"console error: {m.text} ({m.location})"))
        context.on("weberror", lambda e: self.add(f"uncaught: {e.error}"))
        context.on("request", self._request)
        context.on("page", lambda page: page.on("framenavigated", lambda frame: self._navigated(page, frame)))
        context.on("requestfailed", self._request_failed)
        context.on("response", lambda r: r.status >= 400 and self.add(f"HTTP {r.status}: {r.request.method} {r.url}"))

    @staticmethod
    def _page_of(request):
        try:
            return request.frame.page
        except Exception:  # a service worker's own request has no frame
            return None

    def _request(self, request) -> None:
        self.started[request] = time.monotonic()
        page = self._page_of(request)
        if page is not None and request.is_navigation_request():
            self._navigated(page, request.frame)

    def _navigated(self, page, frame) -> None:
        if frame == page.main_frame:
            self.navigated[page] = time.monotonic()

    def _request_failed(self, request) -> None:
        if request.failure == "net::ERR_ABORTED":
            # The service worker fetches navigations with redirect: "manual"
            # and hands the redirect to the browser, which follows it itself;
            # Chromium reports the hop the worker did not follow as aborted.
            if request.redirected_from is not None:
                return
            # A page that navigates (a link, a form, a reload) cancels what it
            # still had in flight: the browser's doing, not a failure. Judged
            # at the end, once the navigation that caused it is known.
            if self.watching:
                self.aborted.append((f"request failed: {request.method} {request.url} {request.failure}",
                                     self._page_of(request), self.started.get(request, 0.0)))
            return
        self.add(f"request failed: {request.method} {request.url} {request.failure}")

    def check(self) -> None:
        aborted, self.aborted = self.aborted, []
        for problem, page, started in aborted:
            if page is None or self.navigated.get(page, -1.0) < started:
                self.add(problem)
        found, self.found = self.found, []
        assert not found, "problems in the browser:\n  " + "\n  ".join(found)


@pytest.fixture
def problems():
    problems = BrowserProblems()
    yield problems
    problems.check()


@pytest.fixture
def new_context(browser, server, problems):
    """new_context(**options) → a watched BrowserContext on the server."""
    contexts: list[BrowserContext] = []

    def make(**options) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(base_url=server.base_url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        problems.watch(context)
        contexts.append(context)
        return context

    yield make
    problems.check()  # before closing: closing aborts whatever is in flight
    problems.watching = False
    for context in contexts:
        context.close()


@pytest.fixture
def username() -> str:
    return "u" + uuid.uuid4().hex[:12]


def register(context: BrowserContext, username: str, device_name: str | None = None) -> dict:
    """Create the account from this context (its cookie is the session)."""
    response = context.request.post("/account/register", data={"username": username, "password": PASSWORD})
    assert response.status == 201, response.text()
    body = response.json()
    if device_name:
        rename(context, body["device"]["id"], device_name)
    return body


def login(context: BrowserContext, username: str, device_name: str | None = None) -> dict:
    response = context.request.post("/account/login", data={"username": username, "password": PASSWORD})
    assert response.status == 200, response.text()
    body = response.json()
    if device_name:
        rename(context, body["device"]["id"], device_name)
    return body


def rename(context: BrowserContext, session_id: int, name: str) -> None:
    response = context.request.post(f"/account/sessions/{session_id}/rename", data={"name": name})
    assert response.status == 200, response.text()


def api_token(context: BrowserContext, name: str = "script") -> str:
    response = context.request.post("/account/tokens", data={"name": name, "password": PASSWORD})
    assert response.status == 201, response.text()
    return response.json()["token"]


def open_app(context: BrowserContext) -> Page:
    """The app at /, connected."""
    page = context.new_page()
    page.goto("/")
    wait_connected(page)
    return page


def wait_connected(page: Page) -> None:
    page.wait_for_selector("#status[data-state=connected]")


def wait_for(page: Page, script: str, arg=None, timeout: float = TIMEOUT_MS / 1000):
    """Poll a JS function until it returns something truthy, and return that.
    (page.wait_for_function evaluates strings with eval(), which the page's
    CSP rightly refuses; page.evaluate is not subject to it.)"""
    deadline = time.monotonic() + timeout
    while True:
        result = page.evaluate(script, arg)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for: {script}")
        time.sleep(0.05)


def wait_controlled(page: Page) -> None:
    """Until the service worker is active and controls this page."""
    wait_for(page, "() => navigator.serviceWorker.controller !== null")


def wait_page_cached(page: Page) -> None:
    """Until the worker keeps a copy of / for offline use."""
    wait_for(page, """async () => {
        for (const name of await caches.keys()) {
            if (await (await caches.open(name)).match("/")) return true;
        }
        return false;
    }""")


def curl(server: LiveServer, token: str) -> httpx.Client:
    """A script's view of the API: bearer token, no browser headers."""
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def items(context: BrowserContext) -> list[dict]:
    response = context.request.get("/file/buffer/items")
    assert response.status == 200
    return response.json()["items"]


def screenshot(page: Page, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
