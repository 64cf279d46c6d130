"""Raw HTTP/1.1 clients that cost the load core as little as possible:
blocking sockets with big buffers for the 1 GiB transfers, asyncio streams for
keep-alive request rates. Loopback only."""
from __future__ import annotations

import asyncio
import socket
import time

HOST = "127.0.0.1"
CHUNK = 1024 * 1024


def _head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_response(sock: socket.socket, sink: bytearray | None = None) -> tuple[int, dict[str, str], bytes, int]:
    """Status, headers, body (kept only if small) and body length."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    received = len(rest)
    body = bytearray(rest) if length <= 1024 * 1024 else bytearray()
    buffer = sink if sink is not None else bytearray(4 * CHUNK)
    view = memoryview(buffer)
    while received < length:
        n = sock.recv_into(view, min(len(view), length - received))
        if n == 0:
            raise ConnectionError("connection closed in the middle of the body")
        if length <= 1024 * 1024:
            body += view[:n]
        received += n
    return status, headers, bytes(body), received


def upload(port: int, path: str, headers: dict[str, str], size: int, block: bytes,
           prefix: bytes = b"", suffix: bytes = b"") -> tuple[int, bytes, float]:
    """POST size bytes (block repeated) between prefix and suffix; returns
    (status, response body, seconds from first byte sent to response read)."""
    length = len(prefix) + size + len(suffix)
    with socket.create_connection((HOST, port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * CHUNK)
        started = time.perf_counter()
        sock.sendall(_head("POST", path, port, {**headers, "Content-Length": str(length)}) + prefix)
        view = memoryview(block)
        sent = 0
        while sent < size:
            n = min(len(view), size - sent)
            sock.sendall(view[:n])
            sent += n
        if suffix:
            sock.sendall(suffix)
        status, _, body, _ = _read_response(sock)
        return status, body, time.perf_counter() - started


def download(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, int, float]:
    """GET path; returns (status, body bytes, seconds from request to last byte)."""
    with socket.create_connection((HOST, port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * CHUNK)
        started = time.perf_counter()
        sock.sendall(_head("GET", path, port, headers or {}))
        status, _, _, received = _read_response(sock)
        return status, received, time.perf_counter() - started


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, bool]:
    """Send one request and read its answer: (status, whether the server is
    closing the connection, as Hypercorn does after keep_alive_max_requests)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    index = lower.find(b"content-length:")
    if index >= 0:
        end = lower.index(b"\r\n", index)
        await reader.readexactly(int(lower[index + 15:end]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, b"\r\nconnection: close" in lower


async def request_rate(port: int, method: str, path: str, headers: dict[str, str], body: bytes,
                       expect: int, connections: int, duration: float) -> dict[str, float]:
    """Requests per second over `connections` keep-alive connections, each
    sending its next request as soon as the previous answer arrived."""
    request = _head(method, path, port, {**headers, "Content-Length": str(len(body))} if body or method == "POST"
                    else headers) + body
    counts = [0] * connections
    errors = [0] * connections
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + duration

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while loop.time() < stop_at:
                status, closing = await _exchange(reader, writer, request)
                if status == expect:
                    counts[index] += 1
                else:
                    errors[index] += 1
                if closing:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    started = loop.time()
    await asyncio.gather(*(one(i) for i in range(connections)))
    elapsed = loop.time() - started
    return {"requests": sum(counts), "errors": sum(errors), "seconds": elapsed, "per_second": sum(counts) / elapsed}
