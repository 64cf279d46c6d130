"""The data dir is the server user's alone (server/data_dir.py): created
owner-only whatever the umask, an older world-readable one tightened at
start-up with one log line, and everything the running server writes there
(database, WAL, uploads, temp files, the key) 0600; and the generated key."""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest

from server.config import ConfigError
from server.data_dir import ensure_data_dir, load_or_create_secret_key
from tests.live_server import live_server_factory, new_user, raw_request_head, wait_for  # noqa: F401  (fixture)

TIGHTENED = "was open to other local users"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes(data_dir: Path) -> dict[str, int]:
    """Every entry under `data_dir` (it included), relative path → mode."""
    found = {".": mode(data_dir)}
    for root, dirs, names in os.walk(data_dir):
        for name in dirs + names:
            path = Path(root, name)
            found[str(path.relative_to(data_dir))] = mode(path)
    return found


class Umask:
    def __init__(self, value: int) -> None:
        self.value = value

    def __enter__(self):
        self.old = os.umask(self.value)

    def __exit__(self, *exc_info):
        os.umask(self.old)


def make_old_data_dir(data_dir: Path) -> None:
    """What an older CloudBuffer left with the usual umask 022."""
    with Umask(0o022):
        (data_dir / "files").mkdir(parents=True)
        (data_dir / "tmp").mkdir()
        sqlite3.connect(data_dir / "cloudbuffer.sqlite3").close()
        (data_dir / "files" / ("ab" * 16)).write_bytes(b"someone's file")
        (data_dir / "secret_key").write_text("k" * 64)
    assert mode(data_dir / "files") == 0o755 and mode(data_dir / "secret_key") == 0o644


def test_a_new_data_dir_is_owner_only_whatever_the_umask(tmp_path, caplog):
    with Umask(0), caplog.at_level(logging.WARNING, logger="server"):
        ensure_data_dir(tmp_path / "data")
        ensure_data_dir(tmp_path / "data")  # idempotent
        load_or_create_secret_key(tmp_path / "data")
    assert modes(tmp_path / "data") == {".": 0o700, "files": 0o700, "tmp": 0o700, "uploads": 0o700,
                                        "secret_key": 0o600}
    assert TIGHTENED not in caplog.text  # nothing was open: nothing to say


def test_an_old_data_dir_is_tightened_with_one_line(tmp_path, caplog):
    data = tmp_path / "data"
    make_old_data_dir(data)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    with caplog.at_level(logging.WARNING, logger="server"):
        ensure_data_dir(data)
        ensure_data_dir(data)
    lines = [record.getMessage() for record in caplog.records if TIGHTENED in record.getMessage()]
    assert lines == [f"data dir {data} {TIGHTENED}: made 3 directories 0700 and 3 files 0600"]
    found = modes(data)
    del found["link"]
    assert set(found.values()) <= {0o700, 0o600} and found["secret_key"] == 0o600
    assert mode(outside) == 0o644  # a symbolic link is not followed


def test_a_data_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        ensure_data_dir(blocker / "data")
    assert str(caught.value).startswith("CLOUDBUFFER_DATA_DIR=")
    assert "cannot be created" in str(caught.value)


def test_a_real_server_on_an_old_data_dir(live_server_factory, tmp_path):  # noqa: F811
    """`cloudbuffer serve` (umask 022) on a 0755/0644 data dir: tightened at
    start with one log line; then the database and its WAL and SHM, an
    upload in flight, a stored file and a share are all 0600."""
    data = tmp_path / "data"
    make_old_data_dir(data)
    server = live_server_factory(data, start=False)
    with Umask(0o022):  # what the server inherits
        server.start()
    assert server.log_text().count(TIGHTENED) == 1
    token = new_user(server, "alice")
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base_url, headers=bearer, timeout=10) as http:
        assert http.post("/file/buffer", content=b"x" * 100_000,
                         headers={"X-Data-Type": "file", "X-File-Name": "a.bin"}).status_code == 201
        assert http.post("/file/load", files={"file": ("b.txt", b"shared")},
                         headers={"Accept": "application/json"}).status_code == 201
    with socket.create_connection(("127.0.0.1", server.port)) as upload:
        upload.sendall(raw_request_head(server, token, 10_000_000) + b"y" * 300_000)
        assert wait_for(lambda: os.listdir(data / "tmp"))
        in_flight = modes(data / "tmp")
    assert set(in_flight.values()) == {0o700, 0o600}, in_flight
    found = modes(data)
    for name in ("cloudbuffer.sqlite3", "cloudbuffer.sqlite3-wal", "cloudbuffer.sqlite3-shm", "secret_key"):
        assert found[name] == 0o600, name
    assert len(os.listdir(data / "files")) == 3
    assert {path: value for path, value in found.items() if value not in (0o600, 0o700)} == {}
    assert {value for path, value in found.items() if Path(data, path).is_dir()} == {0o700}


# --- the secret key --------------------------------------------------------------------------------


def test_secret_key_is_generated_private_and_reused(tmp_path):
    key = load_or_create_secret_key(tmp_path)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert load_or_create_secret_key(tmp_path) == key
    assert sorted(os.listdir(tmp_path)) == ["secret_key"]  # no temp file left behind


def test_a_short_secret_key_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("too short")
    with pytest.raises(ConfigError, match="too short"):
        load_or_create_secret_key(tmp_path)


def test_the_umask_does_not_loosen_the_key_file(tmp_path):
    old = os.umask(0)
    try:
        load_or_create_secret_key(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


