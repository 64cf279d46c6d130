"""docs/operations.md's Caddy recipe, run for real: the Caddyfile block is
read from the doc, pointed at a real `cloudbuffer serve` and served by
Debian's caddy with its internal CA. Through it: https (verified against
Caddy's root), a sign-up, a text, a file upload, and the live WebSocket."""
from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import PASSWORD
from tests.live_server import free_port, live_server_factory  # noqa: F401  (fixture)

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
RECIPE_SITE = "buffer.lan, 192.168.1.20"
RECIPE_UPSTREAM = "127.0.0.1:8000"


def recipe() -> str:
    section = OPERATIONS.read_text().split("## Serving on a LAN or the internet (Caddy)", 1)[1]
    block = re.search(r"```caddyfile\n(.*?)```", section, re.S).group(1)
    assert RECIPE_SITE in block and RECIPE_UPSTREAM in block and "tls internal" in block
    return block


class PortTaken(Exception):
    pass


@pytest.fixture
def caddy(tmp_path):
    executable = shutil.which("caddy")
    if executable is None:
        pytest.fail("caddy is missing: this test runs docs/operations.md's recipe (apt-get install -y caddy)",
                    pytrace=False)
    processes = []

    def start(upstream: str) -> tuple[str, Path]:
        # A free port may be taken by another process before Caddy binds it.
        for attempt in range(3):
            try:
                return start_once(upstream)
            except PortTaken:
                continue
        return start_once(upstream)

    def start_once(upstream: str) -> tuple[str, Path]:
        https_port, http_port = free_port(), free_port()
        while http_port == https_port or upstream.endswith(f":{http_port}") or upstream.endswith(f":{https_port}"):
            http_port = free_port()
        storage = tmp_path / "caddy"
        # The test's own globals: no admin socket, no system trust store, its
        # own ports and storage; the site block is the doc's.
        config = (
            "{\n\tadmin off\n\tskip_install_trust\n"
            f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
            f"\tstorage file_system {{\n\t\troot {storage}\n\t}}\n}}\n"
            + recipe().replace(RECIPE_SITE, f"localhost:{https_port}").replace(RECIPE_UPSTREAM, upstream)
        )
        caddyfile = tmp_path / "Caddyfile"
        caddyfile.write_text(config)
        with open(tmp_path / "caddy.log", "w") as log:
            processes.append(subprocess.Popen(
                [executable, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
        root = storage / "pki" / "authorities" / "local" / "root.crt"
        base = f"https://localhost:{https_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if root.exists():  # any answer over verified TLS: Caddy is up (the server may not be yet)
                    httpx.get(base + "/healthz", verify=ssl.create_default_context(cafile=str(root)), timeout=2)
                    return base, root
            except httpx.HTTPError:
                pass
            if processes[-1].poll() is not None and "address already in use" in (tmp_path / "caddy.log").read_text():
                raise PortTaken()
            if time.monotonic() > deadline or processes[-1].poll() is not None:
                raise AssertionError("caddy did not serve:\n" + (tmp_path / "caddy.log").read_text()[-4000:])
            time.sleep(0.2)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_the_caddy_recipe_serves_https_and_websockets(live_server_factory, caddy):  # noqa: F811
    # The server's port is fixed first: Caddy points at it, and PUBLIC_URL
    # (Caddy's address) must be set before the server starts.
    server = live_server_factory(start=False, port=free_port())
    base, root = caddy(urlparse(server.base_url).netloc)
    server.extra_env.update({"CLOUDBUFFER_PUBLIC_URL": base, "CLOUDBUFFER_TRUSTED_HOPS": "1"})
    server.start()

    context = ssl.create_default_context(cafile=str(root))  # Caddy's root: verified, not -k
    with httpx.Client(base_url=base, verify=context, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] in ("ok", "degraded")
        assert client.post("/account/register", json={"username": "carol", "password": PASSWORD}).status_code == 201
        assert client.post("/file/buffer", headers={"X-Data-Type": "text"}, content=b"through caddy").status_code == 201
        body = b"x" * (3 * 1024 * 1024)
        upload = client.post("/file/buffer", headers={"X-Data-Type": "file", "X-File-Name": "big.bin"}, content=body)
        assert upload.status_code == 201, upload.text
        assert client.get(f"/file/buffer/items/{upload.json()['id']}").content == body
        share = client.post(f"/file/buffer/items/{upload.json()['id']}/share").json()
        assert share["url"].startswith(base + "/file/get")  # PUBLIC_URL
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())

    ws_url = base.replace("https://", "wss://") + "/ws"
    with connect(ws_url, ssl=context, additional_headers={"Cookie": cookie, "Origin": base}) as socket:
        messages = [json.loads(socket.recv(timeout=10)) for _ in range(2)]
        assert messages[0]["type"] == "hello"
        socket.send(json.dumps({"type": "set", "text": "over wss", "id": "c1"}))
        while True:
            message = json.loads(socket.recv(timeout=10))
            if message["type"] == "ack":
                break
    with httpx.Client(base_url=base, verify=context, timeout=10, headers={"Cookie": cookie}) as client:
        assert client.get("/file/buffer").content == b"over wss"
