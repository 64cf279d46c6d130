"""`copy`, `paste`, `history`, `get`: pipes, files and exit codes."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import struct
import subprocess
import termios
import threading

from tests.client.conftest import buffer_of, items_of, token_of
from tests.live_server import cloudbuffer_executable


def test_copy_stdin_text_then_paste_prints_it(logged_in, server):
    assert logged_in.run("copy", input="hello, phone\n").returncode == 0
    response = buffer_of(server, token_of(logged_in))
    assert response.headers["X-Data-Type"] == "text"
    assert response.text == "hello, phone\n"
    pasted = logged_in.run("paste")
    assert (pasted.returncode, pasted.stdout) == (0, b"hello, phone\n")


def test_copy_stdin_that_is_not_utf8_becomes_a_file_named_stdin_or_name(logged_in, server):
    data = bytes(range(256)) * 10
    assert logged_in.run("copy", input=data).returncode == 0
    item = items_of(server, token_of(logged_in))[0]
    assert (item["type"], item["filename"], item["size"]) == ("file", "stdin", len(data))
    assert logged_in.run("copy", "--name", "notes.txt", input="valid text, but named").returncode == 0
    item = items_of(server, token_of(logged_in))[0]
    assert (item["type"], item["filename"]) == ("file", "notes.txt")
    assert logged_in.run("paste").stdout == b"valid text, but named"


def test_copy_stdin_over_the_text_limit_becomes_a_file(logged_in, server):
    data = b"a" * (1024 * 1024 + 1)
    assert logged_in.run("copy", input=data).returncode == 0
    item = items_of(server, token_of(logged_in))[0]
    assert (item["type"], item["size"]) == ("file", len(data))
    assert logged_in.run("paste").stdout == data


def test_copy_files_each_becomes_an_item_and_the_last_is_the_buffer(logged_in, server):
    first, second = logged_in.cwd / "one.bin", logged_in.cwd / "Relevé de compte.pdf"
    first.write_bytes(os.urandom(3 * 1024 * 1024))
    second.write_bytes(b"%PDF-1.4 tiny")
    assert logged_in.run("copy", str(first), str(second)).returncode == 0
    items = items_of(server, token_of(logged_in))
    assert [item["filename"] for item in items[:2]] == ["Relevé de compte.pdf", "one.bin"]
    assert items[1]["size"] == first.stat().st_size
    response = buffer_of(server, token_of(logged_in))
    assert response.content == second.read_bytes()


def test_copy_a_missing_file_is_usage_and_sends_nothing(logged_in, server):
    result = logged_in.run("copy", "nope.txt")
    assert result.returncode == 2
    assert b"nope.txt" in result.stderr
    assert items_of(server, token_of(logged_in)) == []


def test_paste_an_empty_buffer_exits_1(logged_in):
    result = logged_in.run("paste")
    assert (result.returncode, result.stdout) == (1, b"")
    assert b"empty" in result.stderr


def test_paste_a_file_to_a_pipe_writes_its_bytes(logged_in):
    data = os.urandom(2 * 1024 * 1024 + 17)
    (logged_in.cwd / "blob.bin").write_bytes(data)
    logged_in.run("copy", "blob.bin")
    (logged_in.cwd / "blob.bin").unlink()
    assert logged_in.run("paste").stdout == data


def test_paste_O_saves_under_its_name_and_never_overwrites_without_force(logged_in):
    (logged_in.cwd / "report.txt").write_bytes(b"version 1")
    logged_in.run("copy", "report.txt")
    refused = logged_in.run("paste", "-O")
    assert refused.returncode == 3 and b"--force" in refused.stderr
    assert (logged_in.cwd / "report.txt").read_bytes() == b"version 1"
    (logged_in.cwd / "report.txt").unlink()
    assert logged_in.run("paste", "-O").returncode == 0
    assert (logged_in.cwd / "report.txt").read_bytes() == b"version 1"
    (logged_in.cwd / "report.txt").write_bytes(b"local edit")
    assert logged_in.run("paste", "-O", "--force").returncode == 0
    assert (logged_in.cwd / "report.txt").read_bytes() == b"version 1"
    assert sorted(path.name for path in logged_in.cwd.iterdir()) == ["report.txt"]  # no temp file left


def test_paste_o_path_saves_there_and_a_symlink_there_is_not_followed(logged_in, tmp_path):
    logged_in.run("copy", input="text to a file")
    assert logged_in.run("paste", "-o", "saved.txt").returncode == 0
    nowhere = logged_in.run("paste", "-o", "no/such/dir/saved.txt")
    assert nowhere.returncode == 2 and b"cannot write" in nowhere.stderr and b"Traceback" not in nowhere.stderr
    assert (logged_in.cwd / "saved.txt").read_text() == "text to a file"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (logged_in.cwd / "link.txt").symlink_to(victim)
    assert logged_in.run("paste", "-o", "link.txt").returncode == 3
    assert logged_in.run("paste", "-o", "link.txt", "--force").returncode == 0
    assert victim.read_text() == "keep me"
    assert (logged_in.cwd / "link.txt").read_text() == "text to a file"


def test_history_and_get(logged_in):
    assert logged_in.run("history").returncode == 1
    assert json.loads(logged_in.run("history", "--json").stdout) == []
    for text in ("first", "second", "third"):
        logged_in.run("copy", input=text)
    listing = logged_in.run("history")
    assert listing.returncode == 0
    assert len(listing.stdout.splitlines()) == 3
    items = json.loads(logged_in.run("history", "--json").stdout)
    assert [item["type"] for item in items] == ["text"] * 3
    assert logged_in.run("get", "1").stdout == b"third"
    assert logged_in.run("get", "3").stdout == b"first"
    missing = logged_in.run("get", "4")
    assert missing.returncode == 1 and b"has 3" in missing.stderr
    assert logged_in.run("get", "0").returncode == 2


def test_history_search_on_a_plaintext_account_asks_the_server(logged_in):
    for text in ("Grocery list", "meeting at noon", "grocery receipt"):
        logged_in.run("copy", input=text)
    found = logged_in.run("history", "--search", "GROCERY")
    assert found.returncode == 0, found.stderr
    assert [line.split()[0] for line in found.stdout.decode().splitlines()] == ["1", "3"]
    assert logged_in.run("history", "--search", "  ").returncode == 2


def test_paste_into_a_closed_pipe_is_not_an_error(logged_in):

    (logged_in.cwd / "big.bin").write_bytes(b"x\n" * (4 * 1024 * 1024))
    logged_in.run("copy", "big.bin")
    pipeline = subprocess.run(f"'{cloudbuffer_executable()}' paste | head -c 10",
                              shell=True, capture_output=True, cwd=logged_in.cwd, env=logged_in.env, timeout=60)
    assert pipeline.stdout == b"x\nx\nx\nx\nx\n"
    assert b"Traceback" not in pipeline.stderr


def test_a_big_copy_shows_a_progress_bar_only_on_a_terminal(logged_in):

    (logged_in.cwd / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    plain = logged_in.run("copy", "big.bin")
    assert (plain.returncode, plain.stderr) == (0, b"")  # a pipe: nothing on stderr
    master, slave = pty.openpty()

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal has a size
    seen = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.run([cloudbuffer_executable(), "copy", "big.bin"], cwd=logged_in.cwd, env=logged_in.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, timeout=60)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert process.returncode == 0
    text = seen.decode(errors="replace")
    assert "big.bin" in text and "B/s" in text  # tqdm's bar, with the speed


MEASURE_RSS = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def peak_rss_kib(cli, *args: str) -> int:
    """The peak resident memory of one `cloudbuffer ARGS` process, measured by
    a wrapper whose only child it is."""
    import sys

    from tests.live_server import cloudbuffer_executable

    result = subprocess.run([sys.executable, "-c", MEASURE_RSS, cloudbuffer_executable(), *args], cwd=cli.cwd,
                            env=cli.env, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
    peak, code = result.stdout.split()[-2:]
    assert code == b"0", result.stderr
    return int(peak)


def test_a_200_mib_file_is_encrypted_and_decrypted_streamed(logged_in, server):
    """Copy and paste of 200 MiB on an encrypted account: the same sha256
    back, and neither process grows by more than a few records' worth."""
    from tests.client.test_e2e import enable

    enable(logged_in)
    size = 200 * 1024 * 1024
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(logged_in.cwd / "big.bin", "wb") as file:
        for index in range(size // len(block)):
            piece = index.to_bytes(8, "big") + block[8:]
            digest.update(piece)
            file.write(piece)
    (logged_in.cwd / "small.bin").write_bytes(b"x" * 1000)
    baseline_copy = peak_rss_kib(logged_in, "copy", "small.bin")
    baseline_paste = peak_rss_kib(logged_in, "paste", "-o", "small-back.bin")
    copy_peak = peak_rss_kib(logged_in, "copy", "big.bin")
    paste_peak = peak_rss_kib(logged_in, "paste", "-o", "big-back.bin")
    back = hashlib.sha256()
    with open(logged_in.cwd / "big-back.bin", "rb") as file:
        while chunk := file.read(1024 * 1024):
            back.update(chunk)
    assert back.digest() == digest.digest()
    items = items_of(server, token_of(logged_in))
    assert items[0]["size"] > size and items[0]["encrypted"] == "aes128gcm"  # the ciphertext's size
    for peak, baseline in ((copy_peak, baseline_copy), (paste_peak, baseline_paste)):
        assert peak - baseline < 32 * 1024, f"{peak} KiB against {baseline} KiB for a 1000-byte file"
