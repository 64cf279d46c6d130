"""storage.iter_body's guards against slow clients, on fake bodies (the real
server is in tests/test_faults.py)."""
from __future__ import annotations

import asyncio

import pytest

from server.errors import APIError
from server.storage import iter_body


async def body(chunks, pause: float):
    for chunk in chunks:
        await asyncio.sleep(pause)
        yield chunk


async def collect(source, idle: float, min_rate: float, consumer_pause: float = 0.0) -> bytes:
    data = b""
    async for chunk in iter_body(source, idle, min_rate):
        data += chunk
        await asyncio.sleep(consumer_pause)
    return data


async def test_a_trickle_that_is_never_quiet_is_still_dropped():
    # A byte every 0.05 s is never quiet for 0.3 s, but is 20 B/s < 100 B/s.
    with pytest.raises(APIError) as dropped:
        await collect(body([b"x"] * 1000, 0.05), idle=0.3, min_rate=100)
    assert (dropped.value.status, dropped.value.code) == (408, "upload_too_slow")


async def test_a_quiet_client_is_dropped_after_the_idle_time():
    with pytest.raises(APIError) as dropped:
        await collect(body([b"x" * 1000, b"never"], 5.0), idle=0.3, min_rate=0)
    assert (dropped.value.status, dropped.value.code) == (408, "upload_timeout")


async def test_fast_bodies_pass_unchanged_and_a_slow_consumer_is_not_the_clients_fault():
    chunks = [bytes([n]) * 5000 for n in range(10)]
    assert await collect(body(chunks, 0.0), idle=0.3, min_rate=1000) == b"".join(chunks)
    # The server's side taking longer than the idle time (a slow disk) is fine.
    assert await collect(body(chunks[:3], 0.0), idle=0.2, min_rate=0, consumer_pause=0.3) == b"".join(chunks[:3])


async def test_the_end_of_the_body_ends_the_iteration_even_mid_window():
    assert await collect(body([b"a", b"b"], 0.01), idle=5, min_rate=10_000) == b"ab"
