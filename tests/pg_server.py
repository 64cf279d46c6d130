"""A private, throw-away PostgreSQL cluster for tests.

Debian's `initdb` makes a cluster in a temp dir and `postgres` serves it on a
free loopback port, never the machine's own PostgreSQL on 5432. PostgreSQL
refuses to run as root, so when the tests run as root the cluster belongs to
`nobody` (setpriv execs the server as that user, so the process we hold is the
postmaster itself and a SIGKILL of its process group is a real crash). If the
binaries are missing the tests fail loudly instead of being skipped: skipped
PostgreSQL tests would let the second engine ship untested.

One cluster serves the whole session (`pg_cluster`); each test gets a fresh
database in it (`postgres_url`). Fault tests start a cluster of their own
(`pg_server`) that they may kill.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

START_TIMEOUT = 30.0
UNPRIVILEGED = (65534, 65534)  # nobody, nogroup


def find_pg_bin_dir() -> str:
    """The newest installed PostgreSQL's bin dir (Debian puts them under
    /usr/lib/postgresql/<version>/bin, off the PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    raise RuntimeError(
        "initdb not found: install Debian's postgresql package (apt-get install postgresql, or run "
        "tools/setup-test-deps); the PostgreSQL tests must not be skipped")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class PostgresServer:
    def __init__(self) -> None:
        self.bin_dir = find_pg_bin_dir()
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="cloudbuffer-pg-")
        self.data_dir = os.path.join(self._dir, "data")
        self._log_path = os.path.join(self._dir, "postgres.log")
        self._process: subprocess.Popen | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            os.chown(self._dir, *UNPRIVILEGED)
            uid, gid = UNPRIVILEGED
            self._as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        self._databases = itertools.count(1)
        self._initdb()

    def _run_as(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_user + args, cwd=self._dir, capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C.UTF-8"}, **kwargs)

    def _initdb(self) -> None:
        done = self._run_as([os.path.join(self.bin_dir, "initdb"), "-D", self.data_dir, "-U", "cloudbuffer",
                             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://cloudbuffer@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        log = open(self._log_path, "ab")
        try:
            self._process = subprocess.Popen(
                self._as_user + [
                    os.path.join(self.bin_dir, "postgres"), "-D", self.data_dir, "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._dir}",
                    # Nothing is flushed to the disk (the page cache outlives a killed
                    # server, not a machine crash), but each commit is written
                    # out before it returns, so killing the server loses no
                    # commit, as with a production one.
                    "-c", "fsync=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self._dir,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._ready():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"postgres on port {self.port} did not start:\n{self.log_text()}")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def version(self) -> str:
        return os.path.basename(os.path.dirname(self.bin_dir))

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _children(self, pid: int) -> list[int]:
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == pid:
                    children.append(int(entry))
        return children

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash of
        the machine would (each backend is a session of its own, so its
        process group is not the postmaster's)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGSTOP)  # no new backends while the list is taken
        children = self._children(process.pid)
        for pid in children + [process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        # A new postmaster refuses to start while a backend of the old one is
        # still attached to its shared memory: wait until each has exited.
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # "fast" shutdown: ends the sessions, checkpoints
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process = process
            self.kill()

    def log_text(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """One cluster for the session, started on first use."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(pg_cluster) -> str:
    """A fresh database of the session's cluster."""
    return pg_cluster.create_database()


@pytest.fixture
def pg_server():
    """A cluster of this test's own, which it may kill and start again."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
