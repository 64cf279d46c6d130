"""Large request bodies through the real server, over raw sockets: every byte
arrives in order, h11 stays in step for whatever follows on the connection,
and slow senders are read as they send. (Written for a large-body reader that
was measured and removed, server/patches/ in docs/benchmarks.md; they hold
for Hypercorn's own reader as well.)"""
from __future__ import annotations

import hashlib
import os
import socket
import time

import httpx
import pytest

from tests.helpers import stored_files, temp_files
from tests.live_server import LiveServer, new_user, raw_request_head, wait_for

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A 1 s idle guard and no minimum rate: the slow-sender test below
    # pauses 0.4 s between pieces, which only passes if each piece reaches
    # the app as it arrives.
    live = LiveServer(tmp_path_factory.mktemp("large-bodies"),
                      env={"CLOUDBUFFER_MAX_UPLOAD_BYTES": str(64 * MIB), "CLOUDBUFFER_MAX_FILES": "10",
                           "CLOUDBUFFER_UPLOAD_IDLE_SECONDS": "1", "CLOUDBUFFER_UPLOAD_MIN_RATE": "0"})
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def token(server):
    return new_user(server, "bulk")


def body_of(size: int) -> bytes:
    # Every 64 KiB differs, so a piece delivered twice, dropped or out of
    # order changes the hash.
    block = os.urandom(64 * 1024)
    return b"".join(n.to_bytes(8, "big") + block[8:] for n in range(-(-size // len(block))))[:size]


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """`count` HTTP/1.1 responses with Content-Length bodies, in order."""
    buffer, responses = b"", []
    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection after {len(responses)} responses"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status == 100:
            continue
        length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection mid-response"
            buffer += chunk
        responses.append((status, buffer[:length]))
        buffer = buffer[length:]
    return responses


def downloaded_sha256(server: LiveServer, token: str) -> str:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        response = client.get("/file/buffer")
        assert response.status_code == 200, response.text
        return hashlib.sha256(response.content).hexdigest()


def test_a_large_body_with_a_length_arrives_whole(server, token):
    body = body_of(24 * MIB + 12345)  # the last piece a short one
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, len(body), "whole.bin") + body)
        [(status, answer)] = read_responses(sock, 1)
    assert status == 201, answer
    assert downloaded_sha256(server, token) == hashlib.sha256(body).hexdigest()


def test_requests_sent_right_after_a_body_are_answered_too(server, token):
    """Pipelined: each request's bytes follow the previous body's last byte
    in the same send, so some reads hold the end of one body and the start
    of the next request, which must go to h11, not to the upload."""
    large, small = body_of(3 * MIB), body_of(192 * 1024)
    healthz = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, len(large), "pipelined-1.bin") + large
                     + raw_request_head(server, token, len(small), "pipelined-2.bin") + small + healthz)
        (large_status, first), (small_status, second), (health_status, health) = read_responses(sock, 3)
    assert (large_status, small_status, health_status) == (201, 201, 200), (first, second, health)
    assert b'"status"' in health
    assert downloaded_sha256(server, token) == hashlib.sha256(small).hexdigest()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        items = client.get("/file/buffer/items").json()["items"]
        sizes = {item["filename"]: item["size"] for item in items}
    assert sizes["pipelined-1.bin"] == len(large) and sizes["pipelined-2.bin"] == len(small)


def test_a_sender_that_pauses_between_pieces_is_read_as_it_sends(server, token):
    """Pieces of 100 KiB every 0.4 s: had the server waited to gather 256 KiB
    (1.2 s), the upload would look quiet for longer than its 1 s idle guard
    and be dropped with 408."""
    body = body_of(MIB)
    piece = 100 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, len(body), "paced.bin"))
        for start in range(0, len(body), piece):
            sock.sendall(body[start:start + piece])
            time.sleep(0.4)
        [(status, answer)] = read_responses(sock, 1)
    assert status == 201, answer
    assert downloaded_sha256(server, token) == hashlib.sha256(body).hexdigest()


def test_expect_100_continue_then_a_large_body(server, token):
    body = body_of(4 * MIB)
    head = raw_request_head(server, token, len(body), "continued.bin").replace(
        b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        sock.sendall(body)
        [(status, answer)] = read_responses(sock, 1)
    assert status == 201, answer
    assert downloaded_sha256(server, token) == hashlib.sha256(body).hexdigest()


def test_a_client_gone_mid_body_leaves_no_file_and_no_temp_file(server, token):
    before = stored_files(server.data_dir)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw_request_head(server, token, 16 * MIB, "cut.bin") + body_of(5 * MIB))
        assert wait_for(lambda: temp_files(server.data_dir))  # the upload has begun
    assert wait_for(lambda: temp_files(server.data_dir) == [], timeout=10)
    assert stored_files(server.data_dir) == before
