"""`cloudbuffer share FILE`: the link on stdout, its QR code in text."""
from __future__ import annotations

import httpx


def test_share_prints_a_working_link_and_a_qr_code(logged_in):
    data = b"slides " * 50000
    (logged_in.cwd / "slides.pdf").write_bytes(data)
    result = logged_in.run("share", "slides.pdf")
    assert result.returncode == 0, result.stderr
    url = result.stdout.decode().strip()
    assert url.count("\n") == 0 and "/file/get?token=" in url
    assert "█" in result.stderr.decode()  # the QR code, drawn with block characters
    assert httpx.get(url, timeout=10).content == data  # anyone with the link, no token


def test_share_a_missing_file_is_usage(logged_in):
    result = logged_in.run("share", "missing.pdf")
    assert result.returncode == 2 and b"missing.pdf" in result.stderr


def test_share_expires_sets_a_shorter_life_and_a_bad_duration_is_usage(logged_in, server):
    (logged_in.cwd / "brief.txt").write_bytes(b"ten minutes only")
    result = logged_in.run("share", "brief.txt", "--expires", "10m", "--no-qr")
    assert result.returncode == 0, result.stderr
    assert "0 h 9 min" in result.stderr.decode() or "0 h 10 min" in result.stderr.decode()
    assert "█" not in result.stderr.decode()
    assert logged_in.run("share", "brief.txt", "--expires", "soon").returncode == 2
    too_long = logged_in.run("share", "brief.txt", "--expires", "30d")
    assert too_long.returncode == 3 and b"expires_in is a whole number of seconds" in too_long.stderr


def test_share_burn_serves_the_file_once(logged_in):
    (logged_in.cwd / "key.txt").write_bytes(b"read me once")
    result = logged_in.run("share", "key.txt", "--burn", "--no-qr")
    assert result.returncode == 0, result.stderr
    assert "1 download" in result.stderr.decode()
    url = result.stdout.decode().strip()
    assert httpx.get(url, timeout=10).content == b"read me once"
    assert httpx.get(url, timeout=10).status_code == 404


def test_share_max_downloads(logged_in):
    (logged_in.cwd / "two.txt").write_bytes(b"twice")
    result = logged_in.run("share", "two.txt", "--max-downloads", "2", "--no-qr")
    assert result.returncode == 0, result.stderr
    url = result.stdout.decode().strip()
    assert [httpx.get(url, timeout=10).status_code for _ in range(3)] == [200, 200, 404]
    assert logged_in.run("share", "two.txt", "--max-downloads", "0").returncode == 2
    assert logged_in.run("share", "two.txt", "--max-downloads", "2", "--burn").returncode == 2


def test_share_with_a_password(logged_in):
    (logged_in.cwd / "pw.txt").write_bytes(b"behind a password")
    result = logged_in.run("share", "pw.txt", "--password-stdin", "--no-qr", input=b"s3cret\n")
    assert result.returncode == 0, result.stderr
    assert "with a password" in result.stderr.decode()
    url = result.stdout.decode().strip()
    assert httpx.get(url + "&download=1", timeout=10).status_code == 404
    opened = httpx.post(url, data={"password": "s3cret"}, timeout=10, follow_redirects=False)
    assert opened.status_code == 303
    base = url.split("/file/get")[0]
    assert httpx.get(base + opened.headers["Location"] + "&download=1", timeout=10).content == b"behind a password"
