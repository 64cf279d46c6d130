"""`cloudbuffer copy BIG` over tus: a second run after a killed one resumes
the same upload from the server's offset, and the buffer holds the file."""
from __future__ import annotations

import hashlib
import json
import os
import signal

import httpx

from tests.client.conftest import token_of
from tests.live_server import wait_for

MiB = 1024 * 1024


def test_a_big_copy_goes_over_tus_and_a_second_run_resumes_a_killed_one(logged_in, server):
    data = os.urandom(80 * MiB)  # over the client's RESUMABLE_FROM (64 MiB)
    (logged_in.cwd / "video.mp4").write_bytes(data)
    first = logged_in.popen("copy", "video.mp4")
    partials = server.data_dir / "uploads"
    # Killed once a few pieces are on the server: SIGKILL, nothing of it tidies up.
    assert wait_for(lambda: any(p.stat().st_size >= 16 * MiB for p in partials.iterdir()), timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    remembered = json.loads((logged_in.home / "cloudbuffer" / "uploads.json").read_text())
    (url,) = remembered.values()
    token = token_of(logged_in)
    offset = int(httpx.head(url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"},
                            timeout=10).headers["Upload-Offset"])
    assert 0 < offset < len(data)

    result = logged_in.run("copy", "video.mp4", timeout=120)
    assert result.returncode == 0, result.stderr
    state = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert state["finished"] and state["item"]["filename"] == "video.mp4"  # the same upload, finished
    pasted = logged_in.run("paste", timeout=120)
    assert hashlib.sha256(pasted.stdout).digest() == hashlib.sha256(data).digest()
    assert not (logged_in.home / "cloudbuffer" / "uploads.json").exists() or \
        json.loads((logged_in.home / "cloudbuffer" / "uploads.json").read_text()) == {}

