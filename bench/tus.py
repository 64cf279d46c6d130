"""A tus client for #8, as lean as bench/http.py's upload: one blocking
socket kept alive across the creation and every PATCH, so the figure is the
protocol's cost (a request head and an fsync per piece) and not a client's."""
from __future__ import annotations

import base64
import socket
import time

from bench.http import CHUNK, HOST, _head, _read_response

TUS = {"Tus-Resumable": "1.0.0"}


def _metadata(name: str) -> str:
    return "filename " + base64.b64encode(name.encode()).decode()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * CHUNK)
    return sock


def create(sock: socket.socket, port: int, auth: str, size: int, name: str) -> str:
    sock.sendall(_head("POST", "/file/uploads", port, {
        **TUS, "Authorization": auth, "Upload-Length": str(size), "Upload-Metadata": _metadata(name),
        "Content-Length": "0"}))
    status, headers, body, _ = _read_response(sock)
    if status != 201:
        raise RuntimeError(f"tus creation answered {status}: {body[:300]!r}")
    location = headers["location"]
    return location[location.index("/file/uploads/"):]


def patch(sock: socket.socket, port: int, auth: str, path: str, offset: int, length: int, block: bytes) -> int:
    """One PATCH of `length` bytes (block repeated) at `offset`; the new offset."""
    sock.sendall(_head("PATCH", path, port, {
        **TUS, "Authorization": auth, "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream", "Content-Length": str(length)}))
    view = memoryview(block)
    sent = 0
    while sent < length:
        n = min(len(view), length - sent)
        sock.sendall(view[:n])
        sent += n
    status, headers, body, _ = _read_response(sock)
    if status != 204:
        raise RuntimeError(f"tus PATCH answered {status}: {body[:300]!r}")
    return int(headers["upload-offset"])


def head_offset(sock: socket.socket, port: int, auth: str, path: str) -> int:
    sock.sendall(_head("HEAD", path, port, {**TUS, "Authorization": auth}))
    data = bytearray()
    while b"\r\n\r\n" not in data:  # a HEAD answer has no body, whatever its Content-Length says
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the HEAD answer")
        data += chunk
    head = bytes(data).partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    if int(head[0].split()[1]) != 200:
        raise RuntimeError(f"tus HEAD answered {head[0]}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return int(headers["upload-offset"])


def upload(port: int, auth: str, size: int, block: bytes, piece: int, name: str) -> float:
    """Seconds from the creation's first byte to the last PATCH's answer."""
    with _connect(port) as sock:
        started = time.perf_counter()
        path = create(sock, port, auth, size, name)
        offset = 0
        while offset < size:
            offset = patch(sock, port, auth, path, offset, min(piece, size - offset), block)
        return time.perf_counter() - started


def resume_cost(port: int, auth: str, size: int, block: bytes, cut_at: int, name: str) -> float:
    """A PATCH cut off after `cut_at` bytes (the connection dropped), then a
    new connection: seconds from its connect through the HEAD to the answer
    of a PATCH of the first 64 KiB after the server's offset ("the first
    byte accepted": accepted means on disk and counted, which the answer says)."""
    with _connect(port) as sock:
        path = create(sock, port, auth, size, name)
        sock.sendall(_head("PATCH", path, port, {
            **TUS, "Authorization": auth, "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream", "Content-Length": str(size)}))
        view = memoryview(block)
        sent = 0
        while sent < cut_at:
            n = min(len(view), cut_at - sent)
            sock.sendall(view[:n])
            sent += n
    # The server records what arrived once it sees the connection gone: wait for that, not timed.
    deadline = time.monotonic() + 30
    with _connect(port) as sock:
        while head_offset(sock, port, auth, path) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    started = time.perf_counter()
    with _connect(port) as sock:
        offset = head_offset(sock, port, auth, path)
        if offset == 0:
            raise RuntimeError("the cut PATCH kept nothing")
        patch(sock, port, auth, path, offset, 64 * 1024, block)
        return time.perf_counter() - started
