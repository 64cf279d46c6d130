"""server/serving.py: the runner around Hypercorn, on the real process."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.log_safety import REDACTED
from tests.helpers import temp_files
from tests.live_server import (cloudbuffer_executable, live_server_factory, new_user,  # noqa: F401
                               raw_request_head, sigterm_with_sockets_open, wait_for)

REPO = Path(__file__).resolve().parent.parent
GRACEFUL_TIMEOUT = 30  # this test's hypercorn.toml: long, so waiting it out cannot pass for a prompt exit


# A server that hangs instead of exiting is killed here and fails the test.
HANG = 30


@pytest.fixture
def busy_port():
    """A port some other program is listening on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def serve_env(tmp_path, **extra) -> dict[str, str]:
    # Not the settings of this run, nor the `make test` around it (MAKEFLAGS…).
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CLOUDBUFFER_", "MAKE", "MFLAGS"))}
    return {**env, "CLOUDBUFFER_DATA_DIR": str(tmp_path / "data"), **extra}


def assert_one_line_about(result: subprocess.CompletedProcess, address: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if not (line.startswith("make") and "***" in line)]
    assert lines == [f"error: cannot listen on {address}: Address already in use; choose another address "
                     "with --bind HOST:PORT (or make run BIND=HOST:PORT)"], result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_address_is_one_line_and_an_exit(busy_port, tmp_path, workers):
    """`cloudbuffer serve` on a taken port: it printed a traceback, then
    hung for up to a minute; now it says which address and what to do."""
    address = f"127.0.0.1:{busy_port}"
    result = subprocess.run(
        [cloudbuffer_executable(), "serve", "--bind", "127.0.0.1:0", "--bind", address, "--workers", str(workers)],
        capture_output=True, text=True, timeout=HANG,
        env=serve_env(tmp_path, CLOUDBUFFER_REDIS_URL="redis://127.0.0.1:1/0"))
    assert_one_line_about(result, address)


def test_make_run_takes_bind(busy_port, tmp_path):
    """The README's `make run`, told another address with BIND= (here a
    busy one, so that it exits). `-o` keeps make from reinstalling .venv."""
    address = f"127.0.0.1:{busy_port}"
    result = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "run", f"BIND={address}"],
                            cwd=REPO, capture_output=True, text=True, timeout=HANG, env=serve_env(tmp_path))
    assert result.stdout.splitlines()[-1].endswith(f"cloudbuffer serve --bind {address}")
    assert_one_line_about(result, address)


def server_with_hypercorn(live_server_factory, tmp_path, **settings):  # noqa: F811
    """A live server whose hypercorn.toml is the project's with `settings`
    (name=value) changed; each must be a line the file really has."""
    toml = (REPO / "hypercorn.toml").read_text()
    for name, value in settings.items():
        current = next((line for line in toml.splitlines() if line.startswith(f"{name} = ")), None)
        assert current is not None, f"hypercorn.toml has no {name} line"
        toml = toml.replace(current, f"{name} = {value}")
        assert f"{name} = {value}" in toml.splitlines()
    (tmp_path / "hypercorn.toml").write_text(toml)
    return live_server_factory(tmp_path / "data",
                               env={"CLOUDBUFFER_HYPERCORN_CONFIG": str(tmp_path / "hypercorn.toml")})


def test_sigterm_closes_live_sockets_and_exits_without_waiting_out_the_graceful_timeout(
        live_server_factory, tmp_path):  # noqa: F811
    # Hypercorn's keep-alive ping loop used to outlive a closed WebSocket by up
    # to websocket_ping_interval, and the connection's task group waited for
    # it: a shutdown with sockets open always took the whole graceful timeout
    # and ended with a CancelledError traceback in the log.
    # The ping interval longer than the graceful timeout: without the fix the
    # stop would take the whole 30 s.
    server = server_with_hypercorn(live_server_factory, tmp_path, graceful_timeout=GRACEFUL_TIMEOUT,
                                   websocket_ping_interval=60)
    token = new_user(server, "alice")

    codes, elapsed = asyncio.run(sigterm_with_sockets_open(server, token, 3, GRACEFUL_TIMEOUT + 10))
    assert codes == [1001] * 3
    # Not a speed figure: without the fix this takes the full 30 s.
    assert elapsed < GRACEFUL_TIMEOUT / 2, elapsed
    log = server.log_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]


def test_work_still_running_at_the_graceful_timeout_is_cut_with_one_log_line_not_a_traceback(
        live_server_factory, tmp_path):  # noqa: F811
    server = server_with_hypercorn(live_server_factory, tmp_path, graceful_timeout=1)
    token = new_user(server, "alice")
    # An upload that has sent its head and part of its body, then waits.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw_request_head(server, token, 1_000_000) + b"x" * 1000)
        assert wait_for(lambda: temp_files(server.data_dir)), "the upload never started"
        assert server.stop(timeout=20) == 0
    assert temp_files(server.data_dir) == []
    log = server.log_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
    if sys.version_info < (3, 12):  # where asyncio's stream callback reports the cancellation at all
        assert "a connection still open at the end of the graceful timeout was cut" in log, log[-3000:]


async def test_connections_give_the_app_a_light_bounded_queue_of_events():
    from hypercorn.config import Config

    from server.queues import BoundedLightQueue
    from server.patches.app_queue import LightQueueTaskGroup

    config = Config()
    config.max_app_queue_size = 3
    received, sent = [], []
    release = asyncio.Event()

    async def app(scope, receive, send, sync_spawn, call_soon):
        await release.wait()  # a slow app: events pile up to the bound meanwhile
        while (event := await receive())["type"] != "done":
            received.append(event["n"])

    async def send(event):
        sent.append(event)

    async with LightQueueTaskGroup(asyncio.get_running_loop()) as group:
        put = await group.spawn_app(app, config, {"type": "http"}, send)
        assert isinstance(put.__self__, BoundedLightQueue)
        for n in range(3):
            await asyncio.wait_for(put({"type": "event", "n": n}), 1)
        blocked = asyncio.create_task(put({"type": "event", "n": 3}))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # Hypercorn's backpressure on a slow app still holds
        release.set()
        await asyncio.wait_for(blocked, 1)
        await put({"type": "done"})
    assert received == [0, 1, 2, 3]
    assert sent == [None]  # Hypercorn's _handle ends the app's stream as before


class _FakeStream:
    def __init__(self, fail: bool = False) -> None:
        self.pings = 0
        self.fail = fail

    async def ping(self) -> None:
        self.pings += 1
        if self.fail:
            raise ConnectionResetError("peer gone")


async def test_a_failing_ping_stops_no_other():
    from server.patches.ws_pings import PINGS_BETWEEN_YIELDS, ping_all

    streams = [_FakeStream(fail=n % 3 == 0) for n in range(PINGS_BETWEEN_YIELDS * 2 + 1)]
    await ping_all(streams)
    assert all(stream.pings == 1 for stream in streams)


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the server closed the socket"
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def test_a_live_server_pings_its_sockets_every_interval(live_server_factory, tmp_path):  # noqa: F811
    server = server_with_hypercorn(live_server_factory, tmp_path, websocket_ping_interval=0.3)
    token = new_user(server, "alice")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        pings = 0
        while pings < 2:  # the first few text frames are hello, snapshot and devices
            opcode, _ = _read_frame(sock)
            assert opcode in (0x1, 0x9), opcode
            pings += opcode == 0x9


async def test_an_app_that_returned_never_leaves_hypercorn_waiting_to_queue_for_it():
    """An upload answered 401 before its body was read: Hypercorn keeps
    queueing the body's pieces, then `http.disconnect`, for an app that has
    returned. With the queue full those puts waited forever, and so did the
    connection (found by a review: 2 of 3 early-401 uploads of 20 MiB hung)."""
    from hypercorn.config import Config

    from server.patches.app_queue import LightQueueTaskGroup

    config = Config()
    config.max_app_queue_size = 3
    sent = []

    async def app(scope, receive, send, sync_spawn, call_soon):
        await send({"type": "http.response.start", "status": 401})  # answers without reading

    async def send(event):
        sent.append(event)

    async with LightQueueTaskGroup(asyncio.get_running_loop()) as group:
        put = await group.spawn_app(app, config, {"type": "http"}, send)
        for n in range(20):  # far past the bound of 3
            await asyncio.wait_for(put({"type": "http.request", "body": b"x", "more_body": True}), 1)
        await asyncio.wait_for(put({"type": "http.disconnect"}), 1)
    assert sent == [{"type": "http.response.start", "status": 401}, None]


# -- the access log ---------------------------------------------------------

SHARE_TOKEN = "Zq3share-token-Xy9"
SECRETS = (SHARE_TOKEN, "cb_api-token-secret", "session-cookie-secret", "new-cookie-secret",
           "referer-token-secret", "env-secret-value", "proxy-secret", "proxy-password", "dsn-key",
           "encoded-name-secret")


def _scopes(kind: str = "http", path: str = f"/file/get/{SHARE_TOKEN}"):
    request = {"type": kind, "path": path, "query_string": f"token={SHARE_TOKEN}&x=1".encode(),
               "http_version": "1.1", "client": ("203.0.113.9", 50123), "scheme": "http",
               "headers": [(b"user-agent", b"curl/8.5"), (b"authorization", b"Bearer cb_api-token-secret"),
                           (b"cookie", b"session=session-cookie-secret"),
                           (b"proxy-authorization", b"Basic proxy-secret"),
                           (b"referer", b"https://cb.example/file/get?tok%65n=encoded-name-secret&token=referer-token-secret"),
                           (b"x-thing", b"first"), (b"X-Thing", b"second")]}
    if kind == "http":
        request["method"] = "POST"
    response = {"status": 201, "headers": [(b"content-length", b"42"), (b"set-cookie", b"session=new-cookie-secret")]}
    return request, response


def test_access_log_atoms_are_hypercorns_without_secrets(monkeypatch):
    from hypercorn.logging import AccessLogAtoms

    from server.serving import RedactedAtoms

    monkeypatch.setenv("CLOUDBUFFER_SECRET_KEY", "env-secret-value")
    monkeypatch.setenv("CLOUDBUFFER_PLAIN_SETTING", "plain-value")
    monkeypatch.setenv("HTTPS_PROXY", "http://someone:proxy-password@proxy.example:3128")
    monkeypatch.setenv("SENTRY_DSN", "https://dsn-key@sentry.example/1")
    paths = [f"/file/get/{SHARE_TOKEN}", f"//file//qr/{SHARE_TOKEN}", f"/FILE/get//{SHARE_TOKEN}"]
    for kind, path in [("http", path) for path in paths] + [("websocket", paths[0])]:
        request, response = _scopes(kind, path)
        for answer in (response, None):
            theirs = AccessLogAtoms(request, answer, 0.0123)
            ours = RedactedAtoms(request, answer, 0.0123)
            keys = [key for key in theirs if key != "t"] + ["{USER-AGENT}i", "{Cookie}i", "{nope}i", "zz"]
            assert "{cloudbuffer_secret_key}e" in keys and "{authorization}i" in keys
            for key in keys:
                value = ours[key]
                if any(secret in str(theirs[key]) for secret in SECRETS):
                    assert "[redacted]" in str(value), key
                    assert not any(secret in str(value) for secret in SECRETS), (key, value)
                else:
                    assert value == theirs[key], key
    request, response = _scopes()
    ours = RedactedAtoms(request, response, 0.5)
    assert ours["R"] == "POST /file/get/[redacted]?token=[redacted]&x=1 1.1"
    assert ours["{x-thing}i"] == "second" and ours["{plain}e"] == "-" and ours["st"] == "Created"
    assert ours["{cloudbuffer_plain_setting}e"] == "plain-value"
    assert ours["{https_proxy}e"] == "http://[redacted]@proxy.example:3128"
    assert ours["f"] == "https://cb.example/file/get?tok%65n=[redacted]&token=[redacted]"
    assert ours["{\u0130d}i"] == "-"  # lowercases to a name no header can have
    # A formatter that asks with .get() gets what `%` would print, not None.
    fresh = RedactedAtoms(request, response, 0.5)
    assert fresh.get("s") == "201" and fresh.get("{Authorization}i") == "[redacted]"


def test_the_access_log_line_is_formatted_from_the_atoms_it_names(monkeypatch):
    import logging

    from hypercorn.config import Config

    from server.serving import RedactingLogger, build_config

    def line(config: Config) -> str:
        """The access line as Hypercorn's access logger has logging format it."""
        record = logging.LogRecord("hypercorn.access", logging.INFO, __file__, 1, config.access_log_format,
                                   (config.log.atoms(*_scopes(), 0.25),), None)
        return record.getMessage()

    monkeypatch.delenv("CLOUDBUFFER_REDIS_URL", raising=False)
    config = build_config(None, 1)
    assert isinstance(config.log, RedactingLogger)
    assert line(config) == '203.0.113.9:50123 "POST /file/get/[redacted] 1.1" 201 42 0.250000s'
    other = Config()
    other.logger_class = RedactingLogger
    other.access_log_format = "%(t)s %(a)s %({authorization}i)s %(Uq)s"
    custom = line(other)
    assert custom.endswith(" curl/8.5 [redacted] /file/get/[redacted]?token=[redacted]&x=1") and custom.startswith("[")


def _raw_get(server, target: bytes) -> bytes:
    """Send a request line exactly as given (no client library normalises
    it) and return the status line."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_the_real_access_log_cannot_be_forged_and_shows_no_token_in_any_spelling(live_server_factory):  # noqa: F811
    import httpx

    server = live_server_factory()
    api_token = new_user(server, "spelling")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {api_token}"}) as http:
        item = http.post("/file/buffer", content=b"x", headers={"X-Data-Type": "file", "X-File-Name": "x.txt"}).json()
        token = http.post(f"/file/buffer/items/{item['id']}/share").json()["token"]
    # The spellings, byte for byte.
    spellings = [f"/file/get;x/{token}", f"/file/get%5C{token}", f"/file/./get/{token}",
                 f"/file/x/../get/{token}", f"/file/get/%0A{token}", f"/file/get/{token}"]
    forged = ("/nothing%0A[2026-12-03%2009:00:00%20+0000]%20127.0.0.1:1%20%22POST%20/account/password"
              "%201.1%22%20200%200%200.001s")
    for target in [*spellings, forged, "/x%0D%1B[31mred%1B[0m", "/%E2%80%AEevil%C2%85next"]:
        assert _raw_get(server, target.encode()).startswith(b"HTTP/1.1 "), target
    log = server.wait_for_log("evil")
    access = [line for line in log.splitlines() if '"GET ' in line]
    assert len(access) >= 9, log
    assert token not in log
    assert f'"GET /file/get/{REDACTED} 1.1" 200' in log  # the one spelling that routes, downloaded …
    assert log.count(f"/get/{REDACTED} 1.1\" 404") + log.count(f"/get/{REDACTED} 1.1\" 308") >= 4  # … the others not
    assert not any(line.startswith("[2026-12-03 09:00:00") for line in log.splitlines())  # no forged line
    assert '/nothing\\x0a[2026-12-03 09:00:00 +0000] 127.0.0.1:1 \\x22POST /account/password 1.1\\x22' in log
    assert "\r" not in log and "\x1b" not in log and "\u202e" not in log and "\x85" not in log
    assert "/x\\x0d\\x1b[31mred\\x1b[0m" in log and "/\\u202eevil\\x85next" in log
