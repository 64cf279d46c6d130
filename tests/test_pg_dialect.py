"""PostgreSQL under the app (server/pg_dialect.py): statements translated once,
a lost server a clear 503 that heals without a restart, and hosts that must
share one secret key. The model and handler suites run on both engines
(tests/models, tests/blueprints); these are what only PostgreSQL has."""
from __future__ import annotations

import os
import secrets
import subprocess
import threading

import httpx
import psycopg
import pytest

from server.db import Database, DatabaseUnavailable
from server.models import users as users_model
from server.pg_dialect import POSTGRES, to_pyformat
from tests.live_server import cloudbuffer_executable, live_server_factory, new_user, wait_for  # noqa: F401

MIB = 1024 * 1024


@pytest.mark.parametrize("sql, expected", [
    ("SELECT ? , ?", "SELECT %s , %s"),
    ("SELECT '?' , ?", "SELECT '?' , %s"),  # inside quotes a ? is a character
    ('SELECT "a?b" FROM t WHERE x LIKE ? ESCAPE \'\\\'', 'SELECT "a?b" FROM t WHERE x LIKE %s ESCAPE \'\\\''),
    ("SELECT 100 % 7, '5%'", "SELECT 100 %% 7, '5%%'"),  # psycopg reads % everywhere
])
def test_placeholders_become_psycopgs(sql, expected):
    assert to_pyformat(sql) == expected


def _count_users(conn) -> int:
    return conn.value("SELECT COUNT(*) FROM users")


async def test_a_restarted_server_is_reconnected_to_without_an_error(pg_server):
    db = Database(pg_server.create_database(), POSTGRES)
    await db.open()
    try:
        await db.write(users_model.insert_user, "alice", "hash")
        pg_server.stop()
        pg_server.start()
        # Both idle connections went with the old server; the first job on
        # each finds that out at BEGIN, before anything of it ran, and runs
        # on a new connection.
        assert await db.read(_count_users) == 1
        assert await db.write(users_model.insert_user, "bob", "hash") is not None
    finally:
        await db.close()


async def test_a_dead_server_is_database_unavailable_until_it_is_back(pg_server):
    db = Database(pg_server.create_database(), POSTGRES)
    await db.open()
    try:
        user = await db.write(users_model.insert_user, "alice", "hash")
        pg_server.kill()
        with pytest.raises(DatabaseUnavailable):
            await db.write(users_model.increment_user_seq, user.id)
        with pytest.raises(DatabaseUnavailable):
            await db.read(_count_users)
        assert not await db.ping()
        pg_server.start()
        assert await db.ping()
        assert await db.write(users_model.increment_user_seq, user.id) == 1  # the failed bump never committed
    finally:
        await db.close()


async def test_a_connection_lost_inside_a_transaction_rolls_it_back(pg_server):
    db = Database(pg_server.create_database(), POSTGRES)
    await db.open()
    try:
        user = await db.write(users_model.insert_user, "alice", "hash")
        in_transaction, proceed = threading.Event(), threading.Event()

        def bump_and_wait(conn):
            users_model.increment_user_seq(conn, user.id)
            in_transaction.set()
            proceed.wait(30)
            return users_model.increment_user_seq(conn, user.id)

        import asyncio

        writing = asyncio.create_task(db.write(bump_and_wait))
        await asyncio.to_thread(in_transaction.wait, 30)
        pg_server.kill()
        proceed.set()
        with pytest.raises(DatabaseUnavailable):
            await writing
        pg_server.start()
        assert await db.read(users_model.select_user_seq, user.id) == 0  # nothing of it was kept
    finally:
        await db.close()


def _pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_postgres_killed_mid_upload_is_a_503_leaves_nothing_and_heals_without_a_restart(
        live_server_factory, pg_server):  # noqa: F811
    url = pg_server.create_database()
    server = live_server_factory(env={"CLOUDBUFFER_DATABASE_URL": url, "CLOUDBUFFER_SWEEP_SECONDS": "3600"})
    token = new_user(server, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    started = threading.Event()
    release = threading.Event()

    def body():
        yield b"\x01" * MIB
        started.set()
        release.wait(30)
        yield b"\x02" * MIB

    outcome: list = []

    def upload():
        outcome.append(httpx.post(server.base_url + "/file/buffer", content=body(), timeout=60,
                                  headers={**headers, "X-Data-Type": "file", "X-File-Name": "a.bin"}))

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(30)
    assert wait_for(lambda: os.listdir(server.data_dir / "tmp"))  # the upload is being written
    pg_server.kill()
    release.set()
    thread.join(60)
    response = outcome[0]
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert "Retry-After" in response.headers
    # Nothing half-written: no file on disk, no temp file left.
    assert os.listdir(server.data_dir / "files") == []
    assert wait_for(lambda: os.listdir(server.data_dir / "tmp") == [])
    health = httpx.get(server.base_url + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["db"] == "down"

    pg_server.start()  # the same server process goes on
    assert wait_for(lambda: httpx.get(server.base_url + "/healthz", timeout=10).status_code == 200)
    response = httpx.post(server.base_url + "/file/buffer", content=b"after", timeout=30,
                          headers={**headers, "X-Data-Type": "file", "X-File-Name": "b.bin"})
    assert response.status_code == 201, response.text
    assert _pg_rows(url, "SELECT filename, size FROM files") == [("b.bin", 5)]
    assert os.listdir(server.data_dir / "files") == [_pg_rows(url, "SELECT stored_name FROM files")[0][0]]
    assert "Traceback" not in server.log_text()


def test_a_host_with_another_secret_key_refuses_to_start(live_server_factory, postgres_url, tmp_path):  # noqa: F811
    shared = {"CLOUDBUFFER_DATABASE_URL": postgres_url}
    key = secrets.token_urlsafe(48)
    first = live_server_factory(env={**shared, "CLOUDBUFFER_SECRET_KEY": key})
    second = live_server_factory(env={**shared, "CLOUDBUFFER_SECRET_KEY": key})  # the same key: welcome
    assert httpx.get(second.base_url + "/healthz").status_code == 200
    env = {key_: value for key_, value in os.environ.items() if not key_.startswith("CLOUDBUFFER_")}
    env.update(shared, CLOUDBUFFER_DATA_DIR=str(tmp_path / "third"), CLOUDBUFFER_SECRET_KEY=secrets.token_urlsafe(48))
    refused = subprocess.run([cloudbuffer_executable(), "serve", "--bind", "127.0.0.1:0"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "CLOUDBUFFER_SECRET_KEY differs from the key of the other hosts" in refused.stderr
    assert key not in refused.stderr and env["CLOUDBUFFER_SECRET_KEY"] not in refused.stderr
    # Without a key of its own it would generate one in its data dir: refused the same way.
    del env["CLOUDBUFFER_SECRET_KEY"]
    refused = subprocess.run([cloudbuffer_executable(), "serve", "--bind", "127.0.0.1:0"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "differs from the key" in refused.stderr
    assert httpx.get(first.base_url + "/healthz").status_code == 200


def test_an_unreachable_database_stops_the_server_with_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBUFFER_")}
    env.update(CLOUDBUFFER_DATA_DIR=str(tmp_path / "data"),
               CLOUDBUFFER_DATABASE_URL="postgresql://nobody:hunter2hunter2@127.0.0.1:1/none")
    refused = subprocess.run([cloudbuffer_executable(), "serve", "--bind", "127.0.0.1:0"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: cannot use the database (CLOUDBUFFER_DATABASE_URL)")
    assert "hunter2" not in refused.stderr and "Traceback" not in refused.stderr


async def test_a_socket_across_an_outage_is_told_and_stays(live_server_factory, pg_server):  # noqa: F811
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    server = live_server_factory(env={"CLOUDBUFFER_DATABASE_URL": pg_server.create_database()})
    token = await asyncio.to_thread(new_user, server, "alice")
    headers = {"Authorization": f"Bearer {token}"}

    async def reply_of(ws, kinds: tuple[str, ...]) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] in kinds:
                return message

    ws = await connect(server.ws_url + "/ws", additional_headers=headers, open_timeout=10, close_timeout=1)
    try:
        await reply_of(ws, ("buffer",))
        pg_server.kill()
        await ws.send(json.dumps({"type": "set", "id": 1, "text": "while down"}))
        refused = await reply_of(ws, ("error", "ack"))
        assert refused["type"] == "error" and refused["code"] == "database_unavailable"
        with pytest.raises(InvalidStatus) as handshake:
            await connect(server.ws_url + "/ws", additional_headers=headers, open_timeout=10)
        assert handshake.value.response.status_code == 503
        pg_server.start()
        await ws.send(json.dumps({"type": "set", "id": 2, "text": "back"}))
        assert (await reply_of(ws, ("error", "ack"))) == {"type": "ack", "id": 2, "seq": 1}
    finally:
        await ws.close()
    assert "Traceback" not in server.log_text()
