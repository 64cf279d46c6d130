"""server/errors.py and every other log of an error: a share token never
reaches the log, however the request spelled it."""
from __future__ import annotations

import logging
import sqlite3
import sys
from urllib.parse import quote

import httpx

from server.log_safety import REDACTED
from tests.helpers import multipart
from tests.live_server import live_server_factory, new_user  # noqa: F401  (fixture)


def test_an_unhandled_error_on_a_share_path_logs_no_token(live_server_factory):  # noqa: F811
    server = live_server_factory()
    api_token = new_user(server, "erring")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        body, content_type = multipart([("file", "a.txt", b"a")])
        share = http.post("/file/load", content=body, headers={
            "Authorization": f"Bearer {api_token}", "Content-Type": content_type, "Accept": "application/json"}).json()
        token = share["token"]
        assert http.get(f"/file/get/{token}").status_code == 200
        # A real fault under the running server: the shares table is gone,
        # so every share lookup fails with an error the code does not expect.
        with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as db:
            db.execute("ALTER TABLE shares RENAME TO shares_moved")
        paths = [f"/file/get/{token}", f"/file/get?token={token}", f"/file/qr?token={token}",
                 f"/file/get/%0A{token}", f"/file/get/{quote(token)}%0D%1B[31m", f"/file/get?x=1&token={token}"]
        for path in paths:
            response = http.get(path, headers={"Accept": "application/json"})
            assert response.status_code == 500 and response.json()["error"] == "internal_error", path
    log = server.wait_for_log(f"GET /file/get?x=1&token={REDACTED}")
    assert log.count("unhandled error on GET /file/") == len(paths), log
    assert "no such table: shares" in log  # the traceback is there …
    assert token not in log  # … the token is not
    assert f"unhandled error on GET /file/get/{REDACTED}\n" in log
    assert f"unhandled error on GET /file/get?token={REDACTED}\n" in log
    assert "\x1b" not in log and "\r" not in log


async def test_quarts_own_exception_log_names_no_token(app, caplog):
    token = "Zq3share-token-Xy9abcdefghijklm"
    for path in (f"/file/get/{token}", f"/file/get/%0A{token}", f"/file/get?token={token}"):
        async with app.test_request_context(path):
            try:
                raise RuntimeError("an error in an error handler")
            except RuntimeError:
                with caplog.at_level(logging.ERROR, logger="server"):
                    app.log_exception(sys.exc_info())
    assert caplog.text.count("Exception on request GET /file/get") == 3
    assert token not in caplog.text and "\n" + token not in caplog.text


async def test_an_answer_outside_its_schema_is_logged_without_its_values(app, client, caplog, monkeypatch):
    from server.blueprints import files

    real, tokens = files.share_json, []

    def broken_share_json(token, stored):
        # The answer of POST /file/load carries the share token; broken
        # here so that the response check fails and logs.
        tokens.append(token)
        return {**real(token, stored), "size": "big"}

    monkeypatch.setattr(files, "share_json", broken_share_json)
    await client.post("/account/register", json={"username": "schema", "password": "correct horse battery"})
    body, content_type = multipart([("file", "a.txt", b"a")])
    with caplog.at_level(logging.ERROR, logger="server"):
        response = await client.post("/file/load", data=body,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
    assert response.status_code == 500
    assert "POST /file/load answered outside its schema: size: " in caplog.text
    assert tokens and tokens[0] not in caplog.text
