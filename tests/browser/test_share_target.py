"""The manifest's share target: what the phone's share sheet posts lands in
the buffer and the history — through the service worker (the usual way, also
when logged out: kept on the device until the person logs in) and through the
server route when no worker is running."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import PASSWORD, items, open_app, register, wait_connected, wait_controlled

SHARE_FORM = """([fields, withFiles]) => {
    // What the OS share sheet sends: a multipart POST navigation to the action.
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/share-target";
    form.enctype = "multipart/form-data";
    for (const [name, value] of Object.entries(fields)) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.append(input);
    }
    const files = document.createElement("input");
    files.type = "file";
    files.name = "files";
    files.multiple = true;
    files.id = "shared-files";
    form.append(files);
    form.id = "share-form";
    document.body.append(form);
}"""

FILES = [
    {"name": "first.txt", "mimeType": "text/plain", "buffer": b"first shared file"},
    {"name": "second photo.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff not really a jpeg"},
]


def share(page, fields: dict, files: list | None = None) -> None:
    page.evaluate(SHARE_FORM, [fields, bool(files)])
    if files:
        page.set_input_files("#shared-files", files=files)
    page.evaluate("() => document.getElementById('share-form').submit()")


def assert_shared(context, text: str) -> None:
    got = items(context)
    assert [(item["type"], item.get("filename")) for item in got] == [
        ("file", "second photo.jpg"), ("file", "first.txt"), ("text", None)]
    response = context.request.get(f"/file/buffer/items/{got[2]['id']}")
    assert response.text() == text
    assert context.request.get("/file/buffer").body() == FILES[1]["buffer"]


def test_share_text_and_two_files_through_the_worker(new_context, username):
    context = new_context()
    register(context, username)
    page = open_app(context)
    wait_controlled(page)
    share(page, {"title": "A page", "text": "Look at this", "url": "https://example.org/a"}, FILES)
    page.wait_for_url("**/")
    wait_connected(page)
    # The app uploads what the worker kept: text first, the last file ends up as the buffer.
    expect(page.locator("#current-filename")).to_have_text("second photo.jpg")
    expect(page.locator("#history .history-item")).to_have_count(3)
    expect(page.locator("#history")).to_contain_text("Look at this\nhttps://example.org/a")
    assert_shared(context, "Look at this\nhttps://example.org/a")
    # Nothing is left waiting.
    assert page.evaluate("""() => new Promise((resolve) => {
        const open = indexedDB.open("cloudbuffer");
        open.onsuccess = () => {
            const count = open.result.transaction("pending-shares").objectStore("pending-shares").count();
            count.onsuccess = () => resolve(count.result);
        };
    })""") == 0


def test_share_while_logged_out_completes_after_login(new_context, username):
    context = new_context()
    register(context, username)
    page = open_app(context)
    wait_controlled(page)
    page.locator(".account-menu summary").click()  # Log out is in the Account menu
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/account/login")

    share(page, {"text": "shared while logged out"}, FILES)
    # The worker kept the share and sent the browser to the app, which asks for a login.
    page.wait_for_url("**/account/login")
    expect(page.locator("#pending-notice")).to_be_visible()
    assert context.request.get("/file/buffer/items").status == 401  # nothing could be sent yet

    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    expect(page.locator("#current-filename")).to_have_text("second photo.jpg")
    expect(page.locator("#history .history-item")).to_have_count(3)
    assert_shared(context, "shared while logged out")


def test_share_without_a_worker_goes_through_the_server(new_context, username, problems):
    context = new_context(service_workers="block")
    register(context, username)
    page = context.new_page()
    page.goto("/")
    share(page, {"title": "only a title"}, FILES)
    page.wait_for_url("**/")  # the server's 303 to /?shared=3, cleaned up by the app
    wait_connected(page)
    expect(page.locator("#toast")).to_contain_text("Received 3 shared items")
    expect(page.locator("#current-filename")).to_have_text("second photo.jpg")
    assert_shared(context, "only a title")


def test_share_without_a_worker_when_logged_out_asks_to_log_in(new_context):
    context = new_context(service_workers="block")
    page = context.new_page()
    page.goto("/account/login")
    share(page, {"text": "lost"})
    page.wait_for_url("**/account/login?next=/&shared=lost")
    expect(page.get_by_role("status").first).to_contain_text("log in and share it again")
