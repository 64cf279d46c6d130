"""Share links over real HTTP (a real `cloudbuffer serve`): their own budget,
their own expiry, the person's choice of it, and the same link handed back
when the same file is shared again."""
from __future__ import annotations

import sqlite3
import time

import pytest

from tests.helpers import stored_files, temp_files
from tests.live_server import LiveServer
from tests.test_e2e import assert_error, client_for, register


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A small file cap and history, a small link budget, a 1-day maximum."""
    live = LiveServer(tmp_path_factory.mktemp("links"), env={
        "CLOUDBUFFER_MAX_FILES": "3", "CLOUDBUFFER_HISTORY_SIZE": "5", "CLOUDBUFFER_MAX_SHARES": "3",
        "CLOUDBUFFER_SHARE_MAX_SECONDS": "86400"})
    live.start()
    yield live
    live.stop()


def post_file(client, name: str, data: bytes) -> dict:
    response = client.post("/file/buffer", content=data, headers={"X-Data-Type": "file", "X-File-Name": name})
    assert response.status_code == 201, response.text
    return response.json()


def load(client, name: str, data: bytes, **params):
    return client.post("/file/load", params=params, files={"file": (name, data, "application/octet-stream")},
                       headers={"Accept": "application/json"})


def test_a_link_outlives_the_file_cap_and_the_history_trim(server):
    with register(server, "keeper") as alice:
        others = len(stored_files(server.data_dir))  # other tests' users share the data dir
        video = post_file(alice, "video.mp4", b"a 38 MB video, in spirit")
        from_history = alice.post(f"/file/buffer/items/{video['id']}/share").json()
        loaded = load(alice, "slides.pdf", b"%PDF slides").json()
        for n in range(10):  # the ten small files, past MAX_FILES and HISTORY_SIZE
            post_file(alice, f"small-{n}.txt", f"small {n}".encode())

        with client_for(server) as stranger:
            assert stranger.get(from_history["url"]).content == b"a 38 MB video, in spirit"
            assert stranger.get(loaded["url"]).content == b"%PDF slides"
        # The video left the history (cap and trim did their job) but not the disk.
        items = alice.get("/file/buffer/items").json()["items"]
        assert [item["filename"] for item in items] == [f"small-{n}.txt" for n in (9, 8, 7)]
        assert len(stored_files(server.data_dir)) == others + 3 + 2

        # Its owner deleting it is the other way a link ends.
        shares = alice.get("/account/profile").json()["shares"]
        assert {share["filename"] for share in shares} == {"video.mp4", "slides.pdf"}
        for share in shares:
            assert alice.delete(f"/account/shares/{share['id']}").status_code == 200
        with client_for(server) as stranger:
            assert_error(stranger.get(from_history["url"]), 404, "not_found")
            assert_error(stranger.get(loaded["url"]), 404, "not_found")
        assert len(stored_files(server.data_dir)) == others + 3


def test_links_have_their_own_budget(server):
    with register(server, "budget") as alice:
        item = post_file(alice, "photo.jpg", b"jpeg")
        first = alice.post(f"/file/buffer/items/{item['id']}/share").json()
        assert load(alice, "a.bin", b"a").status_code == 201
        assert load(alice, "b.bin", b"b").status_code == 201
        files_before = stored_files(server.data_dir)

        # MAX_SHARES=3: the fourth is refused, a /file/load one before its body is stored.
        refused = load(alice, "c.bin", b"c" * 4096)
        assert_error(refused, 409, "too_many_links")
        assert_error(alice.post(f"/file/buffer/items/{item['id']}/share", json={"new": True}), 409, "too_many_links")
        assert stored_files(server.data_dir) == files_before and temp_files(server.data_dir) == []
        # Buffer files do not count against links: the buffer takes files as before.
        post_file(alice, "more.txt", b"more")

        assert alice.delete(f"/account/shares/{first['id']}").status_code == 200
        assert load(alice, "c.bin", b"c").status_code == 201


def test_sharing_the_same_file_again_returns_its_live_link(server):
    with register(server, "again") as alice:
        item = post_file(alice, "report.pdf", b"%PDF report")
        made = alice.post(f"/file/buffer/items/{item['id']}/share")
        again = alice.post(f"/file/buffer/items/{item['id']}/share")
        assert (made.status_code, made.json()["reused"]) == (201, False)
        assert (again.status_code, again.json()["reused"]) == (200, True)
        assert again.json()["url"] == made.json()["url"] and again.json()["id"] == made.json()["id"]

        fresh = alice.post(f"/file/buffer/items/{item['id']}/share", json={"new": True})
        assert fresh.status_code == 201 and fresh.json()["url"] != made.json()["url"]
        with client_for(server) as stranger:  # both work
            assert stranger.get(made.json()["url"]).content == stranger.get(fresh.json()["url"]).content

        # The history lists the file's live links with their expiry, most time left first.
        (listed,) = alice.get("/file/buffer/items").json()["items"]
        assert [link["url"] for link in listed["links"]] == [fresh.json()["url"], made.json()["url"]]
        assert all(link["expires_at"] > time.time() for link in listed["links"])


def test_the_person_chooses_the_expiry_up_to_the_operators_maximum(server):
    with register(server, "chooser") as alice:
        item = post_file(alice, "notes.txt", b"notes")
        before = time.time()
        ten_minutes = alice.post(f"/file/buffer/items/{item['id']}/share", json={"expires_in": 600}).json()
        assert before + 600 <= ten_minutes["expires_at"] <= time.time() + 600

        for bad in (86401, 59, "soon", True):
            assert_error(alice.post(f"/file/buffer/items/{item['id']}/share", json={"expires_in": bad, "new": True}),
                         400, "invalid_expiry")
        assert_error(load(alice, "x.bin", b"x", expires_in="86401"), 400, "invalid_expiry")

        a_day = load(alice, "day.bin", b"for a day", expires_in="86400").json()
        assert a_day["expires_at"] == pytest.approx(time.time() + 86400, abs=30)
        # The link, not the buffer's 2 h, decides how long the file is kept.
        (day_share,) = [s for s in alice.get("/account/profile").json()["shares"] if s["filename"] == "day.bin"]
        assert day_share["expires_at"] == a_day["expires_at"]


@pytest.fixture(scope="module")
def landing_link(server):
    with register(server, "landing") as alice:
        yield load(alice, "photo.png", b"\x89PNG not really").json()


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("accept, query, page", [
    (BROWSER_ACCEPT, "", True),
    ("*/*", "", False),  # curl, wget
    (None, "", False),
    ("image/avif,image/webp,*/*;q=0.8", "", False),  # an <img> of the page
    (BROWSER_ACCEPT, "&download=1", False),
    (BROWSER_ACCEPT, "&preview=1", False),  # the inline answer is for PDFs only
], ids=["browser", "curl", "no-accept", "img", "download", "preview-of-no-pdf"])
def test_a_browser_gets_the_landing_page_everything_else_the_bytes(server, landing_link, accept, query, page):
    link = landing_link
    snapshot = db_snapshot(server)
    with client_for(server) as stranger:
        for url in (link["url"] + query, f"{server.base_url}/file/get/{link['token']}?{query.lstrip('&')}"):
            response = stranger.get(url, headers={"Accept": accept} if accept else {})
            assert response.status_code == 200 and "Accept" in response.headers["Vary"]
            if page:
                assert response.headers["Content-Type"] == "text/html; charset=utf-8"
                assert "photo.png" in response.text and "link expires" in response.text
                assert response.headers["Referrer-Policy"] == "no-referrer"
                assert response.headers["Cache-Control"] == "private, no-store"
            else:
                assert response.content == b"\x89PNG not really"
                assert response.headers["Content-Disposition"].startswith("attachment;")
                assert response.headers["Content-Security-Policy"].startswith("sandbox;")
    assert db_snapshot(server) == snapshot  # opening a link changes nothing (link-preview bots)


def db_snapshot(server: LiveServer) -> list:
    with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as conn:
        return [(table, conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall())
                for table in ("users", "sessions", "api_tokens", "files", "items", "shares")]


def test_a_pdfs_preview_is_inline_only_as_a_pdf_and_sandboxed(server):
    with register(server, "pdfs") as alice:
        slides = load(alice, "slides.pdf", b"%PDF-1.1 <script>alert(1)</script>").json()
    with client_for(server) as stranger:
        preview = stranger.get(slides["url"] + "&preview=1", headers={"Accept": BROWSER_ACCEPT})
        assert preview.headers["Content-Type"] == "application/pdf"
        assert preview.headers["Content-Disposition"].startswith("inline;")
        assert preview.headers["Content-Security-Policy"] == (
            "sandbox; default-src 'none'; object-src 'none'; frame-ancestors 'self'")
        assert preview.headers["X-Content-Type-Options"] == "nosniff"
        assert preview.headers["X-Frame-Options"] == "SAMEORIGIN"
