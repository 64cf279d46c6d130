"""Issue 14's attacks replayed against the real `cloudbuffer serve`, the way
they were found: floods of text fields at /share-target, more bodies at
once than one person sends, 20 sockets writing as fast as they may, and
odd messages on the live socket."""
from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from websockets.asyncio.client import connect

from tests.live_server import (LiveServer, live_server_factory, new_user, raw_request_head,  # noqa: F401
                               read_response, send_until_answered, wait_for)

MIB = 1024 * 1024


def memory_mib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) // 1024 for name in ("VmRSS", "VmHWM")}


def reset_peak_memory(pid: int) -> None:
    """Start VmHWM afresh from VmRSS (Linux: clear_refs 5), so the peak
    measured is the attack's, not the server's start-up's."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def answer_of(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), raw[:200]
    return int(head.split()[1]), json.loads(body)


def items_of(server: LiveServer, token: str) -> list[dict]:
    response = httpx.get(server.base_url + "/file/buffer/items", headers={"Authorization": f"Bearer {token}"})
    return response.json()["items"]


# --- memory through /share-target ---------------------------------------------------------------------

# What the attack held: 12 requests at once, each of 64 text fields of 1 MiB
# (MAX_TEXT_BYTES). It took the server from 67 to 668 MiB and left it at 616.
REQUESTS, FIELDS = 12, 64
# Fields held in memory are bounded to one text item's worth per request and
# bodies in flight per user to UPLOADS_IN_FLIGHT (8), so the server holds a
# few MiB per request. The bound is generous: a guard against the old
# hundreds of MiB, not a measurement.
MOST_GROWTH_MIB = 120


def test_a_flood_of_text_fields_is_refused_and_memory_stays_flat(live_server_factory):  # noqa: F811
    server = live_server_factory()
    token = new_user(server, "flooder")
    boundary = "flood"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\n'.encode()
                    + b"a" * MIB + b"\r\n" for n in range(FIELDS)) + f"--{boundary}--\r\n".encode()
    request = (f"POST /share-target HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {token}\r\n"
               f"Accept: application/json\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    reset_peak_memory(server.pid)
    before = memory_mib(server.pid)
    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = [answer_of(raw) for raw in pool.map(lambda _: send_until_answered(server, request),
                                                      range(REQUESTS))]
    after = memory_mib(server.pid)
    refusals = {(status, body.get("error")) for status, body in answers}
    assert refusals <= {(413, "too_large"), (413, "too_many_uploads")}, answers
    assert (413, "too_large") in refusals
    assert any("in all" in body["message"] for status, body in answers if status == 413)
    assert items_of(server, token) == []
    assert after["VmHWM"] - before["VmRSS"] < MOST_GROWTH_MIB, (before, after)
    # The same share within its bound is stored.
    response = httpx.post(server.base_url + "/share-target", headers={"Authorization": f"Bearer {token}"},
                          files={"text": (None, "a" * (MIB - 10))})
    assert response.status_code == 201 and response.json()["items"][0]["size"] == MIB - 10


# --- bodies in flight --------------------------------------------------------------------------------------

def test_one_user_can_send_only_so_many_bodies_at_once(live_server_factory):  # noqa: F811
    server = live_server_factory(env={"CLOUDBUFFER_UPLOADS_IN_FLIGHT": "2"})
    token, other = new_user(server, "busy"), new_user(server, "other")
    auth = {"Authorization": f"Bearer {token}"}
    # Two uploads of 1000 bytes, each stopped after 10: both in flight.
    uploads = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(2)]
    try:
        for n, sock in enumerate(uploads):
            sock.sendall(raw_request_head(server, token, 1000, name=f"slow{n}.bin") + b"x" * 10)
        assert wait_for(lambda: len(list((server.data_dir / "tmp").iterdir())) == 2)
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            # A third, of any kind, waits its turn; another user's does not.
            for kwargs in ({"content": b"text", "headers": {**auth, "X-Data-Type": "text"}},
                           {"files": {"file": ("c.bin", b"c")}, "headers": {**auth, "X-Data-Type": "file"}},
                           {"files": {"text": (None, "shared")}, "headers": auth, "url": "/share-target"}):
                response = http.post(kwargs.pop("url", "/file/buffer"), **kwargs)
                assert response.status_code == 413, response.text
                assert response.json()["error"] == "too_many_uploads"
                assert response.headers["Retry-After"] == "1"
            assert http.post("/file/buffer", content=b"mine", headers={"Authorization": f"Bearer {other}",
                                                                        "X-Data-Type": "text"}).status_code == 201
            # One upload ends: the next is taken.
            uploads[0].sendall(b"x" * 990)
            status, _ = answer_of(read_response(uploads[0]))
            assert status == 201
            assert http.post("/file/buffer", content=b"now", headers={**auth, "X-Data-Type": "text"}).status_code == 201
    finally:
        for sock in uploads:
            sock.close()
    assert wait_for(lambda: list((server.data_dir / "tmp").iterdir()) == [])


# --- the write budget over many sockets ------------------------------------------------------------------

SOCKETS, SETS_PER_SECOND, SECONDS = 20, 10, 6
BUDGET, REFILL_PER_SECOND = 60, 1  # server/ratelimits.py WRITES


def test_twenty_sockets_cannot_write_more_than_the_budget(live_server_factory, redis_server, tmp_path):  # noqa: F811
    # Two workers on one Redis: the sockets land on both, and share one budget.
    server = live_server_factory(tmp_path / "data", workers=2, redis_url=redis_server.url)
    token = new_user(server, "writer")
    headers = {"Authorization": f"Bearer {token}"}

    async def run():
        sockets = [await connect(server.ws_url + "/ws", additional_headers=headers, open_timeout=10, close_timeout=1)
                   for _ in range(SOCKETS)]
        nodes = {json.loads(await ws.recv())["node"] for ws in sockets}
        answers: list[dict] = []

        async def read(ws):
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] in ("ack", "error", "pong"):
                    answers.append(message)

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        started = time.monotonic()

        async def write(ws, number):
            for n in range(SETS_PER_SECOND * SECONDS):
                await ws.send(json.dumps({"type": "set", "text": f"{number}-{n}", "id": f"{number}-{n}"}))
                await asyncio.sleep(1 / SETS_PER_SECOND)

        async def post(http):
            # HTTP meanwhile, twice a second: the same budget.
            responses = []
            for _ in range(2 * SECONDS):
                responses.append(await http.post("/file/buffer", content=b"over HTTP", headers={"X-Data-Type": "text"}))
                await asyncio.sleep(0.5)
            return responses

        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
            _, http_answers = await asyncio.gather(asyncio.gather(*(write(ws, n) for n, ws in enumerate(sockets))),
                                                   post(http))
        sent = SOCKETS * SETS_PER_SECOND * SECONDS
        assert await asyncio.to_thread(wait_for, lambda: len(answers) >= sent, 30), (len(answers), sent)
        elapsed = time.monotonic() - started
        # Every socket is still open and answers.
        for ws in sockets:
            await ws.send(json.dumps({"type": "ping", "t": 1}))
        assert await asyncio.to_thread(wait_for, lambda: sum(a["type"] == "pong" for a in answers) == SOCKETS, 10)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
        return nodes, answers, http_answers, elapsed

    nodes, answers, http_answers, elapsed = asyncio.run(run())
    written = sum(a["type"] == "ack" for a in answers) + sum(r.status_code == 201 for r in http_answers)
    # The budget's burst, and what refilled while the test ran (one more for
    # the instant it started): never the 1,000 of issue 14.
    assert BUDGET <= written <= BUDGET + math.ceil(elapsed * REFILL_PER_SECOND) + 1, (written, elapsed, nodes)
    refused = [a for a in answers if a["type"] == "error"]
    assert refused and all(a["code"] == "rate_limited" and a["retry_after"] >= 1 for a in refused)
    assert any(a["message"].startswith("Too many writes") for a in refused)
    assert {r.status_code for r in http_answers} <= {201, 429}
    limited = [r for r in http_answers if r.status_code == 429]
    assert limited and all(r.json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
                           for r in limited)
    assert "Traceback" not in server.log_text()


# --- odd messages on the live socket ---------------------------------------------------------------------

ODD_MESSAGES = [
    ('{"type": "set", "text": "\\ud800"}', "invalid_text"),  # a lone surrogate
    ('{"type": "set", "text": "a\\udc00b", "id": "x"}', "invalid_text"),
    ("[" * 100_000 + "]" * 100_000, "invalid_json"),  # nested 100,000 deep
    ('{"type": "ping", "t": ' + "[" * 500 + "]" * 500 + "}", "invalid_message"),  # deep, then echoed
    ('{"type": "set", "text": "x", "id": {"a": [1, 2]}}', "invalid_message"),
    ('{"type": "ping", "t": 1e999}', "invalid_json"),  # read as infinity, which JSON cannot send back
    ('{"type": "ping", "t": NaN}', "invalid_json"),
    ('{"type": "ping", "t": -Infinity}', "invalid_json"),
    ("1" * 5000, "invalid_json"),  # beyond Python's digits for int()
    ('"just a string"', "invalid_message"),
    ("[1, 2]", "invalid_message"),
    ("null", "invalid_message"),
    ('{"type": 7}', "invalid_message"),
    ('{"type": "set"}', "invalid_message"),
    ('{"type": "' + "x" * 100_000 + '"}', "unknown_type"),
    (b"\xff\xfe\x00 not UTF-8", "invalid_json"),  # a binary frame
]


def test_odd_messages_get_an_error_and_the_socket_stays_open(live_server_factory):  # noqa: F811
    server = live_server_factory()
    token = new_user(server, "oddity")

    async def run():
        async with connect(server.ws_url + "/ws", additional_headers={"Authorization": f"Bearer {token}"},
                           open_timeout=10, close_timeout=1, max_size=None) as ws:
            async def next_answer():
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["type"] not in ("hello", "buffer", "devices"):
                        return message

            got = []
            for raw, _ in ODD_MESSAGES:
                await ws.send(raw)
                got.append(await next_answer())
            await ws.send('{"type": "ping", "t": ' + "9" * 4000 + "}")  # long, but a number JSON can carry
            pong = await next_answer()
            await ws.send('{"type": "set", "text": "still here", "id": 1}')
            ack = await next_answer()
            return got, pong, ack

    got, pong, ack = asyncio.run(run())
    assert [(m["type"], m["code"]) for m in got] == [("error", code) for _, code in ODD_MESSAGES]
    assert all(len(m["message"]) < 200 for m in got)  # nothing echoed at length
    assert pong == {"type": "pong", "t": int("9" * 4000)}
    assert ack["type"] == "ack" and ack["id"] == 1
    log = server.log_text()
    assert "Traceback" not in log and "unhandled" not in log
