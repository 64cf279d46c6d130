"""The real server in a subprocess, for end-to-end, live-sync and browser tests.

`LiveServer` runs `cloudbuffer serve --bind 127.0.0.1:<free port>` exactly as
an operator would (Hypercorn, hypercorn.toml, the access log), with its own
data dir and CLOUDBUFFER_* settings in the environment. Nothing is mocked:
tests talk to it over real sockets (httpx, websockets, a browser).

    def test_something(live_server_factory, tmp_path):
        server = live_server_factory(tmp_path / "data", env={"CLOUDBUFFER_EXPIRE_SECONDS": "2"})
        httpx.get(server.base_url + "/healthz")

Several servers may share one data dir (and a Redis) to act as several hosts.
"""
from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import PASSWORD

# A cold start imports Quart, Hypercorn and argon2 in every worker: about a
# second on an idle machine, but several on a busy 2-core CI runner with
# browsers running next to it, so the limit is generous (a failure still
# shows the server's log at once if the process exits).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cloudbuffer_executable() -> str:
    """The console script installed next to the running interpreter (.venv/bin)."""
    bin_dir = Path(sys.executable).parent
    found = shutil.which("cloudbuffer", path=str(bin_dir))
    if found is None:
        raise RuntimeError(
            f"`cloudbuffer` is not installed in {bin_dir}: run `make test` (pip install -e '.[test]')"
        )
    return found


class LiveServer:
    """One `cloudbuffer serve` process. start() waits until /healthz answers."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        workers: int = 1,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.redis_url = redis_url
        self.extra_env = dict(env or {})
        # A port we chose may be taken by someone else before the server binds
        # it; until the first successful start we may move to another one.
        self._may_move = port is None
        self.port = port if port is not None else free_port()
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBUFFER_")}
        env["CLOUDBUFFER_DATA_DIR"] = str(self.data_dir)
        if self.redis_url is not None:
            env["CLOUDBUFFER_REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"  # the log file is read while the server runs
        return env

    def command(self) -> list[str]:
        return [cloudbuffer_executable(), "serve", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers)]

    def start(self, timeout: float = START_TIMEOUT) -> "LiveServer":
        if self.running:
            raise RuntimeError("the server is already running")
        attempts = 3 if self._may_move else 1
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
                self._may_move = False
                return self
            except RuntimeError:
                if attempt == attempts - 1 or "address already in use" not in self.log_text().lower():
                    raise
                self.port = free_port()
                self.log_path = self.data_dir / f"server-{self.port}.log"
        return self

    def _start_once(self, timeout: float) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal running pytest
                # reaches pytest, which then stops the server cleanly.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"cloudbuffer serve exited with {code} before answering:\n{self.log_tail()}")
            try:
                response = httpx.get(self.base_url + "/healthz", timeout=1.0)
                if response.status_code == 200:
                    return
                # A server that answers but not healthily will not recover by waiting.
                self.kill()
                raise RuntimeError(
                    f"/healthz answered {response.status_code}: {response.text}\n{self.log_tail()}"
                )
            except httpx.HTTPError as error:
                last_error = error
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"cloudbuffer serve did not answer /healthz within {timeout:g} s ({last_error!r}):\n{self.log_tail()}"
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _end(self, sig: int, timeout: float) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Worker processes share the session; take them all down.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it was not running)."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL the server and its workers, as a crash or an OOM kill would."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self._end(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, timeout: float = START_TIMEOUT) -> "LiveServer":
        """Stop and start again on the same port and data dir."""
        self.stop()
        self._may_move = False
        return self.start(timeout)

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log_text()
        return text if len(text) <= chars else "…" + text[-chars:]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        """The log once it contains `needle` (access log lines are written
        after the response is sent, so a test may need to wait a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.fixture
def live_server_factory(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with `factory(data_dir=None, *, workers=1, redis_url=None,
    env=None, start=True)`; all of them are stopped when the test ends."""
    servers: list[LiveServer] = []

    def factory(data_dir: Path | str | None = None, *, start: bool = True, **kwargs) -> LiveServer:
        server = LiveServer(data_dir if data_dir is not None else tmp_path / f"data{len(servers)}", **kwargs)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in servers:
        try:
            server.stop()
        except Exception:
            server.kill()


def new_user(server: LiveServer, username: str, token_name: str = "tests") -> str:
    """Register `username` on the server; return an API token for it."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/account/register", json={"username": username, "password": PASSWORD}).status_code == 201
        response = http.post("/account/tokens", json={"name": token_name, "password": PASSWORD})
        assert response.status_code == 201
        return response.json()["token"]


def wait_for(condition, timeout: float = 15.0, interval: float = 0.05):
    """Poll `condition` until it is truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def raw_request_head(server: LiveServer, token: str, length: int, name: str = "slow.bin") -> bytes:
    """The head of a raw POST /file/buffer upload of `length` bytes."""
    return (f"POST /file/buffer HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\nX-Data-Type: file\r\nX-File-Name: {name}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()


def read_response(sock: socket.socket) -> bytes:
    """What the server answered on a raw socket: up to the end of a JSON
    body, or whatever came before the connection ended."""
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


def send_until_answered(server: LiveServer, request: bytes, piece: int = 64 * 1024) -> bytes:
    """Send a raw request the way a client that reads while it writes does:
    stop sending once the server has answered (it may refuse long before
    the body ends) and return the answer. A client that only reads after
    writing everything often sees a reset instead of the server's answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        view = memoryview(request)
        for start in range(0, len(request), piece):
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(view[start:start + piece])
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_response(sock)


async def sigterm_with_sockets_open(server: LiveServer, token: str, sockets: int,
                                    timeout: float) -> tuple[list[int | None], float]:
    """Open `sockets` live sockets for the token's user, send the server
    SIGTERM, and read each socket to its end. Returns the close codes the
    server sent and the seconds from the signal until the process exited
    (with status 0, asserted); at most `timeout` is waited for each."""
    opened = [await connect(server.ws_url + "/ws", additional_headers={"Authorization": f"Bearer {token}"},
                            open_timeout=5, close_timeout=1) for _ in range(sockets)]
    for ws in opened:
        await asyncio.wait_for(ws.recv(), 5)  # hello
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    codes = []
    for ws in opened:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout)
        except ConnectionClosed as closed:
            codes.append(closed.rcvd.code if closed.rcvd else None)
    assert await asyncio.to_thread(server.process.wait, timeout) == 0
    elapsed = time.monotonic() - started
    server.process = None
    return codes, elapsed

