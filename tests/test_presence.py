"""Both presence stores: the in-memory one and Redis (a real private
redis-server, stopped to test an outage)."""
from __future__ import annotations

import pytest

from server.presence import MemoryPresence, RedisPresence
from tests.redis_server import redis_server  # noqa: F401  (fixture)

LAPTOP = {"id": "s1", "name": "Laptop", "kind": "session"}
PHONE = {"id": "s2", "name": "Phone", "kind": "session"}


@pytest.fixture(params=["memory", "redis"])
async def presence(request):
    if request.param == "memory":
        store = MemoryPresence()
    else:
        store = RedisPresence(request.getfixturevalue("redis_server").url)
    yield store
    await store.close()


async def test_sockets_are_counted_and_devices_listed_once(presence):
    await presence.add(1, "c1", LAPTOP)
    await presence.add(1, "c2", LAPTOP)  # a second tab of the same device
    await presence.add(1, "c3", PHONE)
    await presence.add(2, "c4", PHONE)
    assert await presence.connections(1) == 3
    assert [d["name"] for d in await presence.list(1)] == ["Laptop", "Phone"]
    assert await presence.connections(2) == 1

    await presence.remove(1, "c2", LAPTOP)
    await presence.remove(1, "c3", PHONE)
    assert await presence.connections(1) == 1
    assert [d["name"] for d in await presence.list(1)] == ["Laptop"]
    assert await presence.connections(3) == 0 and await presence.list(3) == []


async def test_redis_outage_means_unknown_not_zero(redis_server):  # noqa: F811
    presence = RedisPresence(redis_server.url)
    try:
        await presence.add(1, "c1", LAPTOP)
        assert await presence.connections(1) == 1
        redis_server.stop()
        # The socket cap then falls back to the worker's own count.
        assert await presence.connections(1) is None
        assert await presence.list(1) == []
    finally:
        await presence.close()
