"""Replays across a reload, in real Chromium (docs/e2e.md: devices keep the
ids inside the key blobs they have seen, with the seq each came under): the
app stores them in IndexedDB per account, so an old item the server serves
again under a new seq, after the person deleted it and the page was closed,
is still tagged "seen before", and a new item is not."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import items, open_app, register, wait_for
from .test_e2e_enable import enable

SEEN = """(username) => new Promise((resolve) => {
    const open = indexedDB.open("cloudbuffer-e2e", 1);
    open.onsuccess = () => {
        const get = open.result.transaction("accounts").objectStore("accounts").get("~seen " + username);
        get.onsuccess = () => resolve(get.result ? get.result.seen : []);
    };
})"""


def test_an_old_item_served_again_after_a_reload_is_still_tagged_seen_before(new_context, username):
    context = new_context()
    register(context, username)
    enable(context)
    app = open_app(context)
    app.fill("#send-text", "pay 10 euros to Bob")
    app.get_by_role("button", name="Send").first.click()
    expect(app.locator("#current-text")).to_have_text("pay 10 euros to Bob")
    [original] = items(context)
    # Stored in IndexedDB: the id inside the key blob, with the seq it came under.
    [[_, seq]] = wait_for(app, SEEN, username)
    assert seq == original["seq"]

    # What a replaying server would do: the same three blobs, later, under a new seq
    # (here posted again by the test), once the person deleted the item and closed the app.
    answer = context.request.get(f"/file/buffer/items/{original['id']}", headers={"Accept": "application/octet-stream"})
    assert answer.ok and answer.headers["x-encrypted-key"] == original["key"]
    body = answer.body()
    assert context.request.delete(f"/file/buffer/items/{original['id']}").ok
    app.close()
    posted = context.request.post("/file/buffer", data=body, headers={
        "X-Encrypted": "aes128gcm", "X-Encrypted-Key": original["key"], "X-Encrypted-Meta": original["meta"],
        "X-Data-Type": "text", "Content-Type": "application/octet-stream"})
    assert posted.status == 201, posted.text()
    [replayed] = items(context)
    assert replayed["seq"] != original["seq"] and replayed["key"] == original["key"]

    app = open_app(context)  # a new page: nothing in memory, only what IndexedDB kept
    expect(app.locator("#current-text")).to_have_text("pay 10 euros to Bob")
    entry = app.locator(f"#history .history-item[data-id='{replayed['id']}']")
    expect(entry.locator(".tag.warning")).to_have_text("seen before")

    app.fill("#send-text", "a new one")
    app.get_by_role("button", name="Send").first.click()
    expect(app.locator("#history .history-item")).to_have_count(2)
    fresh = items(context)[0]
    fresh_entry = app.locator(f"#history .history-item[data-id='{fresh['id']}']")
    expect(fresh_entry.locator(".tag").first).to_have_text("encrypted")
    expect(fresh_entry.locator(".tag.warning")).to_have_count(0)
    expect(entry.locator(".tag.warning")).to_have_text("seen before")
    # Both ids are kept now, each with its first seq.
    kept = dict(wait_for(app, f"async (username) => {{ const seen = await ({SEEN})(username); "
                              "return seen.length === 2 && seen; }", username))
    assert sorted(kept.values()) == sorted([original["seq"], fresh["seq"]])
