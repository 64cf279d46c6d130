"""The client as a real process (`cloudbuffer …` from .venv/bin) against a
real `cloudbuffer serve`, each test with its own config dir."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.live_server import LiveServer, cloudbuffer_executable, live_server_factory  # noqa: F401  (fixture)

CLI_TIMEOUT = 60


@dataclass
class Cli:
    """Runs `cloudbuffer ARGS` with its own XDG_CONFIG_HOME and cwd."""

    home: Path
    cwd: Path
    env: dict

    def run(self, *args: str, input: bytes | str | None = b"", env: dict | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run([cloudbuffer_executable(), *args], input=input, capture_output=True,
                              cwd=self.cwd, env={**self.env, **(env or {})}, timeout=timeout)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([cloudbuffer_executable(), *args], cwd=self.cwd, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)

    @property
    def config_file(self) -> Path:
        return self.home / "cloudbuffer" / "client.toml"


def register(server: LiveServer, username: str) -> None:
    response = httpx.post(server.base_url + "/account/register", json={"username": username, "password": PASSWORD},
                          timeout=10)
    assert response.status_code == 201, response.text


@pytest.fixture
def server(live_server_factory):
    server = live_server_factory()
    register(server, "alice")
    return server


def make_cli(root: Path) -> Cli:
    home, cwd = root / "config", root / "cwd"
    cwd.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBUFFER_")}
    env["XDG_CONFIG_HOME"] = str(home)
    return Cli(home=home, cwd=cwd, env=env)


@pytest.fixture
def cli(tmp_path) -> Cli:
    return make_cli(tmp_path)


@pytest.fixture
def cli_factory(tmp_path):
    """More computers: `cli_factory("laptop")`, each with its own config dir."""
    return lambda name: make_cli(tmp_path / "devices" / name)


@pytest.fixture
def logged_in(cli, server) -> Cli:
    """The cli, logged in as alice with `cloudbuffer login URL -u alice`."""
    result = cli.run("login", server.base_url, "-u", "alice", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return cli


def token_of(cli: Cli) -> str:
    import tomllib

    return tomllib.loads(cli.config_file.read_text())["token"]


def buffer_of(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(server.base_url + "/file/buffer", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def items_of(server: LiveServer, token: str) -> list[dict]:
    response = httpx.get(server.base_url + "/file/buffer/items", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
    assert response.status_code == 200
    return response.json()["items"]


class Background:
    """A long-running `cloudbuffer` command (watch, agent) whose output lines
    are collected by threads, so a test can wait for them."""

    def __init__(self, process: subprocess.Popen) -> None:
        import threading

        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, lines in ((process.stdout, self.stdout), (process.stderr, self.stderr)):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _collect(stream, lines: list[str]) -> None:
        for line in iter(stream.readline, b""):
            lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def wait_for_stderr(self, needle: str, count: int = 1, timeout: float = 30.0) -> None:
        from tests.live_server import wait_for

        found = wait_for(lambda: sum(needle in line for line in self.stderr) >= count or self.process.poll() is not None,
                         timeout=timeout)
        assert found and self.process.poll() is None, f"no {needle!r} on stderr: {self.stderr}"

    def answer(self, line: str) -> None:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def line_with(self, needle: str) -> str:
        return next(line for line in self.stderr if needle in line)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def spawn():
    """Start `cloudbuffer ARGS` as `cli` with a stdin pipe to answer its
    questions (`job.answer("y")`); stopped when the test ends."""
    started: list[Background] = []

    def start(cli: Cli, *args: str) -> Background:
        process = subprocess.Popen([cloudbuffer_executable(), *args], cwd=cli.cwd, env=cli.env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(Background(process))
        return started[-1]

    yield start
    for job in started:
        job.stop()


@pytest.fixture
def background(logged_in):
    """Start `cloudbuffer ARGS` in the background; stopped when the test ends."""
    started: list[Background] = []

    def start(*args: str, env: dict | None = None) -> Background:
        process = subprocess.Popen([cloudbuffer_executable(), *args], cwd=logged_in.cwd,
                                   env={**logged_in.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(Background(process))
        return started[-1]

    yield start
    for job in started:
        job.stop()


def post_text(server: LiveServer, token: str, text: str) -> dict:
    response = httpx.post(server.base_url + "/file/buffer", content=text.encode(),
                          headers={"Authorization": f"Bearer {token}", "X-Data-Type": "text"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()
