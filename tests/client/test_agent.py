"""`cloudbuffer agent` under a real X server (Xvfb) with xclip: both ways,
text and PNG, across a server restart, with no echo loop."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib

import httpx
import pytest

from tests.client.conftest import items_of, post_text, token_of
from tests.live_server import wait_for

# Generous: the agent looks every 0.3 s, but CI machines are busy.
DEADLINE = 20.0


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is missing: the agent's tests need the Debian packages xvfb and xclip "
                    "(sudo tools/setup-test-deps installs them)", pytrace=False)
    return found


@pytest.fixture
def display():
    """A private X server on a display number it picks itself (-displayfd)."""
    xvfb = _require("Xvfb")
    _require("xclip")
    read_end, write_end = os.pipe()
    # -noreset: by default Xvfb resets when its last client leaves, and an xclip
    # connecting during that reset fails (exit 1, seen in CI); a desktop's X
    # server, held by its window manager, never does that.
    process = subprocess.Popen([xvfb, "-displayfd", str(write_end), "-noreset", "-nolisten", "tcp",
                                "-screen", "0", "640x480x24"],
                               pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as numbers:
            number = numbers.readline().strip()
        assert number, "Xvfb did not report its display"
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def png(width: int = 3, height: int = 2, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class X:
    def __init__(self, display: str) -> None:
        self.env = {**os.environ, "DISPLAY": display}

    def copy(self, data: bytes, target: str = "UTF8_STRING") -> None:
        # xclip stays behind serving the selection until another owner takes it.
        subprocess.run(["xclip", "-selection", "clipboard", "-i", "-t", target], input=data, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=10)

    def paste(self, target: str = "UTF8_STRING") -> bytes | None:
        result = subprocess.run(["xclip", "-selection", "clipboard", "-o", "-t", target], env=self.env,
                                capture_output=True, timeout=10)
        return result.stdout if result.returncode == 0 else None


@pytest.fixture
def x(display) -> X:
    return X(display)


@pytest.fixture
def agent(background, display):
    job = background("agent", env={"DISPLAY": display, "WAYLAND_DISPLAY": ""})
    job.wait_for_stderr("syncing the clipboard (xclip)")
    job.wait_for_stderr("agent: live")  # a post before its first snapshot is what the buffer already held
    return job


def buffer_bytes(server, token) -> bytes | None:
    response = httpx.get(server.base_url + "/file/buffer", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.content if response.status_code == 200 else None


def test_a_copy_here_reaches_the_buffer_once(logged_in, server, x, agent):
    token = token_of(logged_in)
    x.copy("copied on the laptop".encode())
    assert wait_for(lambda: buffer_bytes(server, token) == b"copied on the laptop", timeout=DEADLINE)
    # No loop and nothing twice: the agent's own post comes back over /ws,
    # lands in no clipboard write that would be sent again.
    x.copy("copied on the laptop".encode())  # the same content again
    post_text(server, token, "a marker from elsewhere")
    assert wait_for(lambda: x.paste() == b"a marker from elsewhere", timeout=DEADLINE)
    texts = [item for item in items_of(server, token) if item["type"] == "text"]
    assert len(texts) == 2, texts


def test_a_change_elsewhere_lands_in_this_clipboard_and_is_not_sent_back(logged_in, server, x, agent):
    token = token_of(logged_in)
    post_text(server, token, "from the phone")
    assert wait_for(lambda: x.paste() == b"from the phone", timeout=DEADLINE)
    # Wait past several polls; the agent must not re-post what it wrote.
    x.copy(b"then a real copy")
    assert wait_for(lambda: buffer_bytes(server, token) == b"then a real copy", timeout=DEADLINE)
    assert len(items_of(server, token)) == 2


def test_an_image_both_ways(logged_in, server, x, agent):
    token = token_of(logged_in)
    red = png(rgb=(255, 0, 0))
    x.copy(red, target="image/png")
    assert wait_for(lambda: buffer_bytes(server, token) == red, timeout=DEADLINE)
    item = items_of(server, token)[0]
    assert (item["type"], item["mime"]) == ("file", "image/png")
    assert item["filename"].endswith(".png")

    blue = png(rgb=(0, 0, 255))
    response = httpx.post(server.base_url + "/file/buffer", content=blue, timeout=10, headers={
        "Authorization": f"Bearer {token}", "X-Data-Type": "file", "X-File-Name": "blue.png",
        "Content-Type": "image/png"})
    assert response.status_code == 201
    assert wait_for(lambda: x.paste("image/png") == blue, timeout=DEADLINE)
    assert len(items_of(server, token)) == 2


def test_the_agent_survives_a_server_restart_and_takes_only_the_latest(logged_in, server, x, agent):
    token = token_of(logged_in)
    post_text(server, token, "before the restart")
    assert wait_for(lambda: x.paste() == b"before the restart", timeout=DEADLINE)
    server.stop()
    agent.wait_for_stderr("reconnecting")
    x.copy(b"copied while the server was down")
    server.start()
    assert wait_for(lambda: buffer_bytes(server, token) == b"copied while the server was down", timeout=DEADLINE)
    post_text(server, token, "after the restart")
    assert wait_for(lambda: x.paste() == b"after the restart", timeout=DEADLINE)
    texts = [item for item in items_of(server, token)]
    assert [item["size"] for item in texts] == [len(b"after the restart"), len(b"copied while the server was down"),
                                                len(b"before the restart")]


def test_history_is_never_replayed_into_the_clipboard(logged_in, server, x, background, display):
    token = token_of(logged_in)
    post_text(server, token, "old item")
    x.copy(b"what this laptop had")
    job = background("agent", env={"DISPLAY": display})
    job.wait_for_stderr("agent: live")
    post_text(server, token, "new item")
    assert wait_for(lambda: x.paste() == b"new item", timeout=DEADLINE)
    # What the clipboard held at start is not news either: never sent.
    assert [item["size"] for item in items_of(server, token)] == [len(b"new item"), len(b"old item")]


def test_no_clipboard_tool_names_the_packages(logged_in, tmp_path):
    result = logged_in.run("agent", env={"PATH": str(tmp_path), "DISPLAY": ":99", "WAYLAND_DISPLAY": ""})
    assert result.returncode == 2
    assert b"wl-clipboard" in result.stderr and b"xclip" in result.stderr


def test_print_service_prints_a_systemd_user_unit(cli):
    result = cli.run("agent", "--print-service")
    assert result.returncode == 0
    unit = result.stdout.decode()
    assert "[Service]" in unit and "[Install]" in unit
    assert "ExecStart=" in unit and unit.split("ExecStart=")[1].split()[1] == "agent"


def test_an_encrypted_account_syncs_text_and_images_sealed(logged_in, server, x, background, display):
    """On an encrypted account the agent seals what it sends and opens what
    arrives live (an inline text's ciphertext, a PNG's body)."""
    from tests.client.test_e2e import enable

    enable(logged_in)
    token = token_of(logged_in)
    job = background("agent", env={"DISPLAY": display, "WAYLAND_DISPLAY": ""})
    job.wait_for_stderr("syncing the clipboard (xclip)")

    x.copy("a secret copied on the laptop".encode())
    assert wait_for(lambda: logged_in.run("paste").stdout == b"a secret copied on the laptop", timeout=DEADLINE)
    raw = httpx.get(server.base_url + "/file/buffer", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert raw.headers["X-Encrypted"] == "aes128gcm" and b"a secret" not in raw.content

    assert logged_in.run("copy", input="sealed, from elsewhere").returncode == 0
    assert wait_for(lambda: x.paste() == b"sealed, from elsewhere", timeout=DEADLINE)

    green = png(rgb=(0, 255, 0))
    (logged_in.cwd / "green.png").write_bytes(green)
    assert logged_in.run("copy", "green.png").returncode == 0
    assert wait_for(lambda: x.paste("image/png") == green, timeout=DEADLINE)
    red = png(rgb=(255, 0, 0))
    x.copy(red, target="image/png")
    assert wait_for(lambda: logged_in.run("paste").stdout == red, timeout=DEADLINE)
    items = items_of(server, token)
    assert all(item["encrypted"] == "aes128gcm" and "filename" not in item for item in items)
    assert len(items) == 4, items
