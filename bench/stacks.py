"""The systems under test, each a Redis plus a two-process WebSocket server,
pinned to the server core:

- CloudBufferStack: the real `cloudbuffer serve --workers 2` (tests.live_server.LiveServer
  under taskset) with a private redis-server (tests.redis_server.RedisServer).
- BaselineStack: bench/baseline_ws.py on its own private redis-server.

Both hand out "targets" -- (URL, headers) pairs a WebSocket client opens -- for
the idle pool (users with DEVICES_PER_USER devices each) and for the probes.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import baseline_ws
from bench.system import Pinning, children_of
from tests.live_server import LiveServer, free_port
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DEVICES_PER_USER = 5  # devices (sockets) per user in the idle pool: phone, laptop, desktop, …
PASSWORD = "bench password 1234"

Target = tuple[str, dict[str, str]]


def _worker_pids(parent: int) -> list[int]:
    """The worker processes of a server: children started by multiprocessing
    (spawn_main) or as `--worker`, never the resource tracker."""
    return [pid for pid, cmd in children_of(parent) if "spawn_main" in cmd or "--worker" in cmd]


class PinnedLiveServer(LiveServer):
    def __init__(self, *args, pinning: Pinning, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pinning = pinning

    def command(self) -> list[str]:
        return self.pinning.server_command(super().command())


class _Redis:
    def __init__(self, pinning: Pinning) -> None:
        self.server = RedisServer()
        self.pinning = pinning

    def start(self) -> str:
        self.server.start()
        self.pinning.pin_pid_to_server(self.server.pid)
        return self.server.url

    def stop(self) -> None:
        self.server.cleanup()


class CloudBufferStack:
    name = "cloudbuffer"

    def __init__(self, workdir: Path, pinning: Pinning, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.pinning = pinning
        self.data_dir = workdir / "cloudbuffer-data"
        self.extra_env = {
            # Uploads are repeated many times: keep few files, never hit the quota.
            "CLOUDBUFFER_MAX_FILES": "3",
            "CLOUDBUFFER_QUOTA_BYTES": str(1024**4),
            # The benchmarks measure the server, not its abuse limits (rates, uploads at once).
            "CLOUDBUFFER_RATE_LIMITS": "false",
            "CLOUDBUFFER_UPLOADS_IN_FLIGHT": "1024",
            "CLOUDBUFFER_MIN_FREE_BYTES": "0",
            **(env or {}),
        }
        self.redis = _Redis(pinning)
        self.server: PinnedLiveServer | None = None
        self.pool_tokens: list[str] = []
        self.probe_tokens: list[tuple[str, str]] = []
        self.loader_tokens: dict[str, str] = {}

    # -- lifetime -------------------------------------------------------

    def start(self, pool_size: int, probes: int) -> "CloudBufferStack":
        try:
            redis_url = self.redis.start()
            self._seed_pool(pool_size)
            self.server = PinnedLiveServer(self.data_dir, workers=2, redis_url=redis_url, env=self.extra_env,
                                           pinning=self.pinning)
            self.server.start(timeout=30)
            self._register(probes)
        except BaseException:
            self.stop()  # leave no redis-server or workers behind
            raise
        return self

    def restart(self) -> None:
        """A fresh server process (memory starts from scratch), same data and Redis."""
        self.server.stop()
        self.server.start(timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.redis.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    def worker_pids(self) -> list[int]:
        return _worker_pids(self.server.pid)

    @property
    def redis_pid(self) -> int:
        return self.redis.server.pid

    # -- accounts ---------------------------------------------------------

    def _seed_pool(self, pool_size: int) -> None:
        """Pool users and their device tokens, written with the server's own
        model functions (as `cloudbuffer user add` does). Registering thousands
        of users over HTTP would spend 0.25 s of argon2 each: minutes of setup."""
        from argon2 import PasswordHasher

        from server.db import Database
        from server.models import sessions as sessions_model
        from server.models import users as users_model

        password_hash = PasswordHasher().hash(PASSWORD)
        tokens = ["cb_" + secrets.token_urlsafe(32) for _ in range(pool_size)]

        def insert_all(conn) -> None:
            for start in range(0, pool_size, DEVICES_PER_USER):
                user = users_model.insert_user(conn, f"pool{start // DEVICES_PER_USER}", password_hash)
                for index in range(start, min(start + DEVICES_PER_USER, pool_size)):
                    sessions_model.insert_api_token(conn, user.id, f"device {index % DEVICES_PER_USER}", tokens[index])

        async def seed() -> None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            db = Database(self.data_dir / "cloudbuffer.sqlite3")
            await db.open()
            try:
                await db.write(insert_all)
            finally:
                await db.close()

        asyncio.run(seed())
        self.pool_tokens = tokens

    def _register(self, probes: int) -> None:
        """Probe users and the loader user through the HTTP API: register, then
        create API tokens (one per device)."""
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            def user(name: str, devices: list[str]) -> list[str]:
                client.cookies.clear()
                response = client.post("/account/register", json={"username": name, "password": PASSWORD})
                response.raise_for_status()
                out = []
                for device in devices:
                    answer = client.post("/account/tokens", json={"name": device, "password": PASSWORD})
                    answer.raise_for_status()
                    out.append(answer.json()["token"])
                client.post("/account/logout", json={})
                return out

            self.probe_tokens = [tuple(user(f"probe{n}", ["sender", "receiver"])) for n in range(probes)]
            names = ["uploader", "poster", "listener 1", "listener 2"]
            self.loader_tokens = dict(zip(names, user("loader", names)))

    # -- targets ----------------------------------------------------------

    def _target(self, token: str) -> Target:
        return (f"ws://127.0.0.1:{self.port}/ws", {"Authorization": f"Bearer {token}"})

    def pool_targets(self, start: int, count: int) -> list[Target]:
        if start + count > len(self.pool_tokens):
            raise ValueError(f"only {len(self.pool_tokens)} pool devices were seeded")
        return [self._target(token) for token in self.pool_tokens[start:start + count]]

    def probe_targets(self, probes: int) -> list[tuple[Target, Target]]:
        return [(self._target(a), self._target(b)) for a, b in self.probe_tokens[:probes]]

    def auth_header(self, device: str) -> str:
        return f"Bearer {self.loader_tokens[device]}"


class BaselineStack:
    name = "baseline"

    def __init__(self, workdir: Path, pinning: Pinning) -> None:
        self.workdir = workdir
        self.pinning = pinning
        self.redis = _Redis(pinning)
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.redis_url = ""

    def start(self, pool_size: int = 0, probes: int = 0) -> "BaselineStack":
        try:
            self.redis_url = self.redis.start()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self) -> None:
        self.port = free_port()
        log = open(self.workdir / f"baseline-{self.port}.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            self.pinning.server_command([sys.executable, "-m", "bench.baseline_ws", "--port", str(self.port),
                                         "--redis", self.redis_url, "--workers", "2"]),
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baseline_ws exited with {self.process.returncode}")
            if len(self.worker_pids()) == 2 and self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError("baseline_ws did not start listening")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def restart(self) -> None:
        self._stop_server()
        self._start_server()

    def _stop_server(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        self._stop_server()
        self.redis.stop()

    def worker_pids(self) -> list[int]:
        return _worker_pids(self.process.pid) if self.process else []

    def _target(self, user_id: int) -> Target:
        return (f"ws://127.0.0.1:{self.port}/ws?token={baseline_ws.make_token(user_id)}", {})

    def pool_targets(self, start: int, count: int) -> list[Target]:
        return [self._target(100_000 + index // DEVICES_PER_USER) for index in range(start, start + count)]

    def probe_targets(self, probes: int) -> list[tuple[Target, Target]]:
        return [(self._target(n), self._target(n)) for n in range(probes)]


class SendfileServer:
    """bench/sendfile_server.py serving one file, pinned to the server core."""

    def __init__(self, workdir: Path, pinning: Pinning, path: Path) -> None:
        self.port = free_port()
        log = open(workdir / f"sendfile-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            pinning.server_command([sys.executable, "-m", "bench.sendfile_server", "--port", str(self.port),
                                    "--file", str(path)]),
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sendfile_server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

