"""Large request bodies through the real server: the megabyte read path of
server/large_bodies.py must deliver every byte in order, leave h11 in step
for whatever follows on the connection, and still read slow senders."""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import struct
import time
from contextlib import asynccontextmanager

import httpx
import pytest

from server.patches import large_bodies
from tests.helpers import stored_files, temp_files
from tests.live_server import LiveServer, new_user, raw_request_head, wait_for

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A 1 s idle guard and no minimum rate: the slow-sender test below
    # pauses 0.4 s between pieces, which only passes if those pieces reach
    # the app without waiting for a whole PIECE.
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


def test_the_fast_path_is_on_with_the_installed_h11_and_hypercorn(monkeypatch):
    from hypercorn.asyncio import run as hypercorn_run

    monkeypatch.setattr(hypercorn_run, "TCPServer", hypercorn_run.TCPServer)  # restored afterwards
    assert large_bodies.problem() is None
    large_bodies.apply({})
    assert hypercorn_run.TCPServer is large_bodies.LargeBodyTCPServer


def test_without_the_names_it_needs_hypercorn_keeps_its_own_reader(monkeypatch):
    from hypercorn.asyncio import run as hypercorn_run

    original = hypercorn_run.TCPServer
    monkeypatch.setattr(hypercorn_run, "TCPServer", original)
    monkeypatch.delattr(large_bodies.H11Protocol, "_handle_events")  # as if Hypercorn had renamed it
    assert large_bodies.problem() == "Hypercorn's H11Protocol has no _handle_events"
    assert hypercorn_run.TCPServer is original


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
    """Pieces of 100 KiB every 0.4 s: a whole 256 KiB piece takes 1.2 s to
    gather, so if the server waited for whole pieces the upload would look
    quiet for longer than its 1 s idle guard and be dropped with 408."""
    body = body_of(MIB)
    piece = 100 * 1024
    assert piece < large_bodies.PIECE < 3 * piece
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


# --- in process: what Hypercorn hands the app ---------------------------------------------------------


@asynccontextmanager
async def hypercorn_serving(http_app, monkeypatch, queue_size: int = 10):
    """Hypercorn serving `http_app` (HTTP calls only; the lifespan is answered
    here) in this event loop with LargeBodyTCPServer, as `cloudbuffer serve`
    installs it; yields the port."""
    from hypercorn.asyncio import run as hypercorn_run
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from tests.live_server import free_port

    monkeypatch.setattr(hypercorn_run, "TCPServer", large_bodies.LargeBodyTCPServer)
    config = Config()
    config.bind = [f"127.0.0.1:{free_port()}"]
    config.accesslog = None
    config.max_app_queue_size = queue_size
    config.graceful_timeout = 1  # slow test apps are cut at the end, not waited for

    async def app(scope, receive, send):
        if scope["type"] != "lifespan":
            await http_app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    port = int(config.bind[0].rsplit(":", 1)[1])
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)


def recording_app(events: list, gate: asyncio.Event | None = None):
    """An ASGI app that reads the whole body, recording each message, and
    answers 200; with a gate, it waits for it after the first piece."""
    async def app(scope, receive, send):
        while True:
            message = await receive()
            events.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
            if gate is not None:
                await gate.wait()
        if message["type"] == "http.request":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
    return app


async def test_the_app_gets_a_large_body_in_pieces_bigger_than_hypercorns_own_reads(monkeypatch):
    events: list = []
    body = body_of(4 * MIB)
    async with hypercorn_serving(recording_app(events), monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
    assert status.startswith(b"HTTP/1.1 200")
    pieces = [message["body"] for message in events if message["type"] == "http.request"]
    assert b"".join(pieces) == body
    # Hypercorn's own path reads 64 KiB at a time and h11 passes each on.
    assert max(map(len, pieces)) > 64 * 1024


async def test_a_client_that_resets_mid_body_ends_the_read_loop_without_an_error(monkeypatch):
    """The reset closes the socket while the read loop waits on a full app
    queue; the SO_RCVLOWAT change that follows, on the closed socket, must
    end the read like any other error (found by a review: the OSError
    escaped, Hypercorn cancelled the app instead of telling it, and with a
    full queue the connection hung until shutdown)."""
    outcomes: list = []

    class Recording(large_bodies.LargeBodyTCPServer):
        async def _read_data(self) -> None:
            try:
                await super()._read_data()
            except BaseException as error:
                outcomes.append(error)
                raise
            outcomes.append("ended")

    events: list = []
    gate = asyncio.Event()
    # The queue holds ten pieces (so asyncio keeps reading and sees the
    # reset); the app, held at its gate, leaves the eleventh waiting.
    async with hypercorn_serving(recording_app(events, gate), monkeypatch, queue_size=10) as port:
        monkeypatch.setattr("hypercorn.asyncio.run.TCPServer", Recording)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {16 * MIB}\r\n\r\n".encode())
        for _ in range(11):
            await loop.sock_sendall(sock, b"x" * (100 * 1024))
            await asyncio.sleep(0.25)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        await asyncio.sleep(0.3)
        gate.set()  # the app takes the next piece: the read loop goes on, on a closed socket
        for _ in range(100):
            if outcomes:
                break
            await asyncio.sleep(0.1)
    assert outcomes == ["ended"]


def hashing_app():
    """An ASGI app that answers every request with its body's length and
    SHA-256, read message by message as the upload handler reads it."""
    async def app(scope, receive, send):
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            digest.update(body)
            size += len(body)
            if not message.get("more_body"):
                break
        answer = f"{size} {digest.hexdigest()}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
    return app


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        answers.append(await asyncio.wait_for(reader.readexactly(length), 20))
    return answers


@pytest.mark.parametrize("seed", range(20))
async def test_any_split_of_pipelined_bodies_reaches_the_app_byte_for_byte(monkeypatch, seed):
    """Bodies on both sides of the thresholds (LOWAT_FROM, PIECE), one to
    three requests back to back on one connection, the byte stream cut at
    random places and sent with random pauses: whatever reads the server's
    socket sees, each request's body reaches the app whole and in order, and
    the next request's head goes to h11."""
    rng = random.Random(seed)
    sizes = [0, 1, large_bodies.LOWAT_FROM - 1, large_bodies.LOWAT_FROM + 1, large_bodies.PIECE,
             large_bodies.PIECE + 1, 3 * large_bodies.PIECE - 7, 2 * MIB + 3]
    bodies = [rng.randbytes(rng.choice(sizes)) for _ in range(rng.randint(1, 3))]
    stream = b"".join(f"POST /up/{n} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                      for n, body in enumerate(bodies))
    async with asyncio.timeout(60), hypercorn_serving(hashing_app(), monkeypatch) as port:  # fail, never hang
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        while sent < len(stream):
            piece = rng.choice([1, 100, 4096, 65536, 200_000, 700_000])
            writer.write(stream[sent:sent + piece])
            await writer.drain()
            sent += piece
            if rng.random() < 0.2:
                await asyncio.sleep(rng.choice([0.001, 0.05, large_bodies.PATIENCE + 0.05]))
        answers = await read_answers(reader, len(bodies))
        writer.close()
    assert answers == [f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode() for body in bodies]
