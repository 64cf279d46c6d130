"""Big files from the PWA over tus (pwa/js/resumable-upload.js), in real
Chromium against the real server: tus-js-client (vendored, checked here to
be npm's own bytes) creates the upload, sends it in 8 MiB PATCHes, resumes
from the server's offset after a dropped connection and after a reload
(its upload URL kept in IndexedDB), and Cancel terminates it. The app's
threshold (32 MiB) is lowered with <html data-resumable-from> except where
the default path itself is under test."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import PHONE, REPO, items, open_app, register, wait_controlled
from .test_e2e_enable import enable
from .test_e2e_pairing import pair
from .test_share_target import share

MIB = 1024 * 1024
CHUNK = 8 * MIB  # resumable-upload.js's CHUNK_BYTES
TUS_DIR = REPO / "tests" / "browser" / "tus"  # package.json + lockfile pinning tus-js-client
VENDORED = REPO / "pwa" / "js" / "vendor"
UPLOAD_URL = "**/file/uploads/*"


def until(page, condition, timeout_ms: int = 30_000) -> None:
    """Let the page run (and route handlers fire) until condition() holds."""
    waited = 0
    while not condition():
        assert waited < timeout_ms, "timed out"
        page.wait_for_timeout(50)
        waited += 50


def lower_threshold(page, size: int = MIB) -> None:
    page.evaluate("(size) => { document.documentElement.dataset.resumableFrom = String(size); }", size)


def random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def buffer_sha256(context) -> str:
    return hashlib.sha256(context.request.get("/file/buffer").body()).hexdigest()


class Tus:
    """The tus requests a context makes, and the PATCHes' offsets."""

    def __init__(self, context) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.locations: list[str] = []
        context.on("request", lambda r: "/file/uploads" in r.url and self.requests.append(
            (r.method, r.url, r.headers)))
        context.on("response", lambda r: r.request.method == "POST" and r.url.endswith("/file/uploads")
                   and self.locations.append(r.headers["location"]))

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.requests]

    def offsets(self) -> list[int]:
        return [int(headers["upload-offset"]) for method, _, headers in self.requests if method == "PATCH"]


def stored_upload_urls(page) -> int:
    return page.evaluate("""() => new Promise((resolve) => {
        const open = indexedDB.open("cloudbuffer-uploads");
        open.onsuccess = () => {
            const db = open.result;
            if (!db.objectStoreNames.contains("tus")) { db.close(); resolve(0); return; }
            const count = db.transaction("tus").objectStore("tus").count();
            count.onsuccess = () => { db.close(); resolve(count.result); };
        };
    })""")


def test_a_file_from_32_mib_goes_over_tus_by_default(new_context, username, tmp_path):
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    path = tmp_path / "video.mp4"
    digest = random_file(path, 32 * MIB + 1)
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#current-filename")).to_have_text("video.mp4", timeout=60_000)
    assert tus.methods()[0] == "POST" and tus.methods().count("PATCH") == 5
    assert tus.offsets() == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    assert buffer_sha256(context) == digest
    [item] = items(context)
    assert item["filename"] == "video.mp4" and item["size"] == 32 * MIB + 1
    assert stored_upload_urls(page) == 0  # a finished upload's address is forgotten


def test_a_small_file_keeps_the_single_post(new_context, username, tmp_path):
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    lower_threshold(page)
    path = tmp_path / "small.bin"
    digest = random_file(path, MIB - 1)
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#current-filename")).to_have_text("small.bin")
    assert tus.requests == [] and buffer_sha256(context) == digest


def test_offline_mid_upload_resumes_from_the_servers_offset(new_context, username, problems, tmp_path):
    problems.allow(r"request failed: (PATCH|HEAD) .*/file/uploads/.*ERR_INTERNET_DISCONNECTED")
    problems.allow(r"console error: Failed to load resource: net::ERR_INTERNET_DISCONNECTED .*/file/uploads/")
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    lower_threshold(page)
    patches = []

    def drop_second_patch(route):
        patches.append(route.request)
        if route.request.method == "PATCH" and len(patches) == 2:
            context.set_offline(True)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(UPLOAD_URL, drop_second_patch)
    path = tmp_path / "train.bin"
    digest = random_file(path, 2 * CHUNK + MIB)
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#uploads .upload")).to_contain_text("Offline")
    context.set_offline(False)
    expect(page.locator("#current-filename")).to_have_text("train.bin", timeout=30_000)
    offsets = tus.offsets()
    assert offsets[:2] == [0, CHUNK]  # the second PATCH is the one the drop cut
    assert offsets[2] == CHUNK and 0 not in offsets[1:], offsets  # it went on where the server was
    assert "HEAD" in tus.methods()[tus.methods().index("PATCH") + 1:]
    assert buffer_sha256(context) == digest


def test_reload_mid_upload_then_the_same_file_resumes(new_context, username, tmp_path):
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    lower_threshold(page)
    held = []

    def hold_second_patch(route):
        if route.request.method == "PATCH" and not held and route.request.headers["upload-offset"] != "0":
            held.append(route)  # never answered: the reload ends it
        else:
            route.continue_()

    page.route(UPLOAD_URL, hold_second_patch)
    path = tmp_path / "holiday.mov"
    digest = random_file(path, 2 * CHUNK + MIB)
    page.set_input_files("#file-input", str(path))
    until(page, lambda: held)
    assert stored_upload_urls(page) == 1
    page.reload()
    before = len(tus.requests)
    lower_threshold(page)
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#current-filename")).to_have_text("holiday.mov", timeout=30_000)
    after = tus.requests[before:]
    assert [method for method, _, _ in after][:2] == ["HEAD", "PATCH"]  # no new upload: the stored one
    assert int(after[1][2]["upload-offset"]) == CHUNK
    assert tus.methods().count("POST") == 1
    assert buffer_sha256(context) == digest
    assert stored_upload_urls(page) == 0


def test_cancel_terminates_the_upload_on_the_server(new_context, username, problems, tmp_path):
    problems.allow(r"request failed: PATCH .*/file/uploads/.*ERR_ABORTED")
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    lower_threshold(page)
    held = []

    def hold_second_patch(route):
        if route.request.method == "PATCH" and route.request.headers["upload-offset"] != "0":
            held.append(route)
        else:
            route.continue_()

    page.route(UPLOAD_URL, hold_second_patch)
    path = tmp_path / "oops.bin"
    random_file(path, 2 * CHUNK + MIB)
    page.set_input_files("#file-input", str(path))
    until(page, lambda: held)
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="Cancel upload of oops.bin").click()
    assert deleted.value.status == 204
    expect(page.locator("#uploads .upload").first).to_contain_text("Cancelled.")
    [url] = tus.locations
    assert context.request.head(url, headers={"Tus-Resumable": "1.0.0"}).status == 404
    assert items(context) == [] and stored_upload_urls(page) == 0


def test_an_encrypted_big_file_goes_over_tus_resumes_and_decrypts_on_the_phone(new_context, username, server,
                                                                            problems, tmp_path):
    problems.allow(r"request failed: PATCH .*/file/uploads/.*ERR_FAILED")
    problems.allow(r"console error: Failed to load resource: net::ERR_FAILED .*/file/uploads/")
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    phone = new_context(viewport=PHONE, accept_downloads=True)
    pair(laptop, phone, server)
    tus = Tus(laptop)
    laptop_app, phone_app = open_app(laptop), open_app(phone)
    lower_threshold(laptop_app)
    cut = []

    def cut_second_patch(route):
        if route.request.method == "PATCH" and not cut and route.request.headers["upload-offset"] != "0":
            cut.append(route.request)
            route.abort()
        else:
            route.continue_()

    laptop_app.route(UPLOAD_URL, cut_second_patch)
    path = tmp_path / "secret plans.pdf"
    digest = random_file(path, CHUNK + MIB)
    laptop_app.set_input_files("#file-input", str(path))
    expect(phone_app.locator("#current-filename")).to_have_text("secret plans.pdf", timeout=60_000)
    [creation] = [headers for method, _, headers in tus.requests if method == "POST"]
    metadata = dict(pair_.strip().partition(" ")[::2] for pair_ in creation["upload-metadata"].split(","))
    assert {"encrypted", "key", "meta", "target"} <= set(metadata) and "filename" not in metadata
    assert cut and tus.offsets().count(CHUNK) == 2 and tus.methods().count("POST") == 1  # the drop resumed
    with phone_app.expect_download() as info:
        phone_app.locator("#download-current").click()
    assert hashlib.sha256(Path(info.value.path()).read_bytes()).hexdigest() == digest


def test_a_big_shared_file_goes_over_tus(new_context, username, tmp_path):
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = open_app(context)
    wait_controlled(page)
    path = tmp_path / "shared video.mp4"
    digest = random_file(path, 32 * MIB + 1)
    share(page, {"title": "", "text": "", "url": ""}, [str(path)])
    page.wait_for_url("**/")
    expect(page.locator("#current-filename")).to_have_text("shared video.mp4", timeout=60_000)
    assert "POST" in tus.methods() and tus.methods().count("PATCH") == 5
    assert buffer_sha256(context) == digest


@pytest.fixture(scope="module")
def npm_tus() -> Path:
    """tus-js-client as npm installs it from the committed lockfile."""
    package = TUS_DIR / "node_modules" / "tus-js-client"
    if not (package / "dist" / "tus.min.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: this test installs tus-js-client with it (apt-get install -y npm)",
                        pytrace=False)
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TUS_DIR, capture_output=True,
                                text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"could not install tus-js-client in {TUS_DIR}:\n{result.stdout}\n{result.stderr}",
                        pytrace=False)
    return package


def test_the_vendored_tus_js_client_is_npms_own(npm_tus):
    assert (VENDORED / "tus.min.js").read_bytes() == (npm_tus / "dist" / "tus.min.js").read_bytes()
    assert (VENDORED / "tus-js-client.LICENSE").read_bytes() == (npm_tus / "LICENSE").read_bytes()
    assert json.loads((npm_tus / "package.json").read_text())["version"] == "4.3.1"


def test_a_big_share_link_upload_goes_over_tus(new_context, username, server, tmp_path):
    context = new_context()
    register(context, username)
    tus = Tus(context)
    page = context.new_page()
    page.goto("/file/load")
    lower_threshold(page)
    path = tmp_path / "for a friend.mkv"
    digest = random_file(path, CHUNK + MIB)
    page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible(timeout=30_000)
    expect(page.locator("#result-name")).to_have_text("for a friend.mkv")
    url = page.input_value("#result-url")
    assert url.startswith(server.base_url + "/file/get?token=")
    [creation] = [headers for method, _, headers in tus.requests if method == "POST"]
    assert "target c2hhcmU=" in creation["upload-metadata"]  # base64 of "share"
    assert tus.methods().count("PATCH") == 2
    assert hashlib.sha256(context.request.get(url).body()).hexdigest() == digest
    assert items(context) == []  # a link, not the buffer


def test_an_encrypted_big_share_link_opens_with_its_key(new_context, username, tmp_path):
    owner = new_context()
    register(owner, username)
    enable(owner)
    tus = Tus(owner)
    page = owner.new_page()
    page.goto("/file/load")
    lower_threshold(page)
    path = tmp_path / "minutes.bin"
    data = os.urandom(2 * MIB)
    path.write_bytes(data)
    page.set_input_files("#load-file", str(path))
    expect(page.locator("#load-result")).to_be_visible(timeout=30_000)
    link = page.locator("#result-url").input_value()
    assert "#k=" in link and "POST" in tus.methods() and "PATCH" in tus.methods()
    [creation] = [headers for method, _, headers in tus.requests if method == "POST"]
    assert "encrypted " in creation["upload-metadata"] and "key " not in creation["upload-metadata"]
    stranger = new_context(accept_downloads=True)
    shared = stranger.new_page()
    shared.goto(link)
    expect(shared.get_by_role("heading", name="minutes.bin")).to_be_visible()
    with shared.expect_download() as info:
        shared.get_by_role("button", name="Download").click()
    assert Path(info.value.path()).read_bytes() == data


def test_logging_out_forgets_the_unfinished_uploads(new_context, username, tmp_path):
    context = new_context()
    register(context, username)
    page = open_app(context)
    lower_threshold(page)
    held = []

    def hold_second_patch(route):
        if route.request.method == "PATCH" and route.request.headers["upload-offset"] != "0":
            held.append(route)
        else:
            route.continue_()

    page.route(UPLOAD_URL, hold_second_patch)
    path = tmp_path / "left behind.bin"
    random_file(path, CHUNK + MIB)
    page.set_input_files("#file-input", str(path))
    until(page, lambda: held)
    assert stored_upload_urls(page) == 1
    page.locator(".account-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/account/login")
    assert page.evaluate("async () => (await indexedDB.databases()).map((db) => db.name)").count(
        "cloudbuffer-uploads") == 0
