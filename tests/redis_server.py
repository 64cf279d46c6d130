"""A private, throw-away redis-server for tests.

Every test that needs Redis gets its own server on a free port, so tests cannot
see each other's channels and never touch a Redis the machine may already run
(e.g. the system one on 6379). The binary is Debian's redis-server package; if
it is missing the tests fail loudly instead of being skipped, because skipped
Redis tests would let the multi-worker code ship untested.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import redis

START_TIMEOUT = 5.0


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server not found: install Debian's redis-server package "
            "(apt-get install redis-server); the Redis tests must not be skipped"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        # A port we picked can be taken by someone else before redis binds it; until
        # the first successful start we may move to another one. Restarts keep theirs.
        self._may_move = port is None
        self.port = port if port is not None else _free_port()
        self._process: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="cloudbuffer-redis-")
        self._log_path = os.path.join(self._dir, "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The running redis-server's process id (the benchmarks pin it and read its CPU time)."""
        assert self._process is not None, "redis-server is not running"
        return self._process.pid

    def client(self) -> redis.Redis:
        """A plain synchronous client, for inspecting the server from a test."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        attempts = 3 if self._may_move else 1
        for attempt in range(attempts):
            try:
                self._start_once()
                self._may_move = False
                return
            except RuntimeError:
                if attempt == attempts - 1 or "Address already in use" not in self._read_log():
                    raise
                self.port = _free_port()

    def _start_once(self) -> None:
        binary = find_redis_server()
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,  # anything redis might write lands in the temp dir, not the repo
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5,
                                 socket_connect_timeout=0.5) as client:
                    if client.ping():
                        return
            except redis.RedisError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self._read_log()}")

    def _read_log(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except OSError:
            return "(no log)"

    def _end(self, sig: int) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): sockets stay open but nothing answers, like a hung host."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client_kill_pubsub(self) -> int:
        """Drop every pub/sub connection, as a network fault would; returns how many."""
        with self.client() as client:
            return int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
