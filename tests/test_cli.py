"""`cloudbuffer user add|passwd|del` and start-up errors of `cloudbuffer serve`."""
from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys

import pytest

from server import cli
from server.auth import verify_password
from server.db import Database
from server.models import files as files_model
from server.models import sessions as sessions_model
from server.models import users as users_model
from tests.live_server import cloudbuffer_executable

PASSWORD = "a long enough password"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("CLOUDBUFFER_"):
            monkeypatch.delenv(name)
    path = tmp_path / "data"
    monkeypatch.setenv("CLOUDBUFFER_DATA_DIR", str(path))
    return path


def run(monkeypatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(list(argv))


def fails(monkeypatch, *argv: str, stdin: str = "") -> str:
    with pytest.raises(SystemExit) as caught:
        run(monkeypatch, *argv, stdin=stdin)
    message = str(caught.value.code)
    assert message.startswith("error: ")
    return message


def query(data_dir, action):
    async def go():
        db = Database(data_dir / "cloudbuffer.sqlite3")
        await db.open()
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(go())


def user_named(data_dir, name):
    return query(data_dir, lambda db: db.read(users_model.select_user_by_username, name))


def test_user_add_reads_the_password_from_stdin(data_dir, monkeypatch, capsys):
    assert run(monkeypatch, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert "created user alice" in capsys.readouterr().out
    user = user_named(data_dir, "ALICE")
    assert user.username == "alice"
    assert user.password_hash.startswith("$argon2id$")
    assert asyncio.run(verify_password(user.password_hash, PASSWORD))


def test_user_add_refuses_a_duplicate_in_any_case(data_dir, monkeypatch):
    run(monkeypatch, "user", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert "taken" in fails(monkeypatch, "user", "add", "Alice", "--password-stdin", stdin=PASSWORD)


@pytest.mark.parametrize("name", ["al", "-alice", "has space", "x" * 33, "ali/ce", "émile"])
def test_user_add_refuses_bad_names(data_dir, monkeypatch, name):
    message = fails(monkeypatch, "user", "add", "--password-stdin", "--", name, stdin=PASSWORD)
    assert "username" in message
    assert not (data_dir / "cloudbuffer.sqlite3").exists() or user_named(data_dir, name) is None


def test_user_add_refuses_a_short_password(data_dir, monkeypatch):
    assert "password" in fails(monkeypatch, "user", "add", "alice", "--password-stdin", stdin="short\n")


def test_user_passwd_changes_the_password_and_ends_sessions(data_dir, monkeypatch, capsys):
    run(monkeypatch, "user", "add", "alice", "--password-stdin", stdin=PASSWORD)
    user = user_named(data_dir, "alice")

    async def add_sessions(db):
        for key in ("laptop-key", "phone-key"):
            await db.write(sessions_model.insert_session, user.id, key, key)

    query(data_dir, add_sessions)
    assert run(monkeypatch, "user", "passwd", "ALICE", "--password-stdin", stdin="the new password\n") == 0
    assert "2 session(s) ended" in capsys.readouterr().out
    changed = user_named(data_dir, "alice")
    assert asyncio.run(verify_password(changed.password_hash, "the new password"))
    assert not asyncio.run(verify_password(changed.password_hash, PASSWORD))
    assert query(data_dir, lambda db: db.read(sessions_model.select_sessions, user.id)) == []


def test_user_passwd_of_an_unknown_user(data_dir, monkeypatch):
    assert "no user named 'nobody'" in fails(monkeypatch, "user", "passwd", "nobody", "--password-stdin",
                                             stdin=PASSWORD)


def test_user_del_removes_the_account_and_its_files(data_dir, monkeypatch, capsys):
    run(monkeypatch, "user", "add", "alice", "--password-stdin", stdin=PASSWORD)
    run(monkeypatch, "user", "add", "bob", "--password-stdin", stdin=PASSWORD)
    alice, bob = user_named(data_dir, "alice"), user_named(data_dir, "bob")
    (data_dir / "files" / "alices-file").write_bytes(b"a")
    (data_dir / "files" / "bobs-file").write_bytes(b"b")

    async def add_files(db):
        await db.write(files_model.insert_file, alice.id, "alices-file", "a.txt", "text/plain", 1, 9e12)
        await db.write(files_model.insert_file, bob.id, "bobs-file", "b.txt", "text/plain", 1, 9e12)

    query(data_dir, add_files)
    assert run(monkeypatch, "user", "del", "alice") == 0
    assert "deleted user alice" in capsys.readouterr().out
    assert user_named(data_dir, "alice") is None
    assert os.listdir(data_dir / "files") == ["bobs-file"]
    assert user_named(data_dir, "bob") is not None
    assert "no user named 'alice'" in fails(monkeypatch, "user", "del", "alice")


def test_a_bad_setting_is_reported_not_a_traceback(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("CLOUDBUFFER_EXPIRE_SECONDS", "soon")
    assert run(monkeypatch, "user", "del", "alice") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CLOUDBUFFER_EXPIRE_SECONDS='soon' is invalid")


def real_cli(*argv: str, env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([cloudbuffer_executable(), *argv], input=stdin, capture_output=True, text=True,
                          env=env, timeout=30)


def clean_env(data_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBUFFER_")}
    return {**env, "CLOUDBUFFER_DATA_DIR": str(data_dir), **extra}


def test_the_console_script_adds_a_user_from_a_pipe(data_dir):
    # Not a terminal: the password is read from stdin even without the flag.
    result = real_cli("user", "add", "carol", env=clean_env(data_dir), stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert user_named(data_dir, "carol") is not None


@pytest.mark.parametrize(
    "argv, extra_env, expected",
    [
        (["serve"], {"CLOUDBUFFER_MAX_FILES": "0"}, "error: CLOUDBUFFER_MAX_FILES='0' is invalid: must be a positive integer"),
        (["serve", "--workers", "2"], {}, "workers need CLOUDBUFFER_REDIS_URL"),
    ],
)
def test_serve_refuses_to_start_with_a_clear_message(data_dir, argv, extra_env, expected):
    result = real_cli(*argv, "--bind", "127.0.0.1:1", env=clean_env(data_dir, **extra_env))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
