"""Which of a user's devices are online now, across workers and hosts.

Each open socket is an entry with a deadline; its worker refreshes the deadline
while the socket lives, so a worker that dies takes its entries with it after
PRESENCE_TTL. With Redis the entries are a sorted set per user (score =
deadline); in memory they are a dict. Both answer the same `list`.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)

PRESENCE_TTL = 60.0  # seconds; sockets refresh every PRESENCE_REFRESH
PRESENCE_REFRESH = 20.0


class Presence(Protocol):
    async def add(self, user_id: int, conn_id: str, device: dict) -> None: ...
    async def refresh(self, user_id: int, conn_id: str, device: dict) -> None: ...
    async def remove(self, user_id: int, conn_id: str, device: dict) -> None: ...
    async def list(self, user_id: int) -> list[dict]: ...
    async def close(self) -> None: ...


def _unique_devices(entries: list[dict]) -> list[dict]:
    """One entry per device, however many tabs or sockets it has open."""
    seen: dict[str, dict] = {}
    for entry in entries:
        seen.setdefault(entry["id"], {"id": entry["id"], "name": entry["name"], "kind": entry["kind"]})
    return sorted(seen.values(), key=lambda d: (d["name"].lower(), d["id"]))


class MemoryPresence:
    def __init__(self) -> None:
        self._entries: dict[int, dict[str, dict]] = {}

    async def add(self, user_id: int, conn_id: str, device: dict) -> None:
        self._entries.setdefault(user_id, {})[conn_id] = device

    refresh = add

    async def remove(self, user_id: int, conn_id: str, device: dict) -> None:
        entries = self._entries.get(user_id, {})
        entries.pop(conn_id, None)
        if not entries:
            self._entries.pop(user_id, None)

    async def list(self, user_id: int) -> list[dict]:
        return _unique_devices(list(self._entries.get(user_id, {}).values()))

    async def close(self) -> None:
        self._entries.clear()


class RedisPresence:
    def __init__(self, url: str, key_prefix: str = "cloudbuffer:presence:") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = key_prefix

    def _member(self, conn_id: str, device: dict) -> str:
        return json.dumps({"conn": conn_id, **device}, separators=(",", ":"), sort_keys=True)

    async def add(self, user_id: int, conn_id: str, device: dict) -> None:
        key = self._prefix + str(user_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {self._member(conn_id, device): time.time() + PRESENCE_TTL})
                pipe.zremrangebyscore(key, "-inf", time.time())
                pipe.expire(key, int(PRESENCE_TTL * 2))
                await pipe.execute()
        except Exception as error:  # presence is best effort; sync must go on without it
            log.warning("presence update failed: %s", type(error).__name__)

    refresh = add

    async def remove(self, user_id: int, conn_id: str, device: dict) -> None:
        try:
            await self._redis.zrem(self._prefix + str(user_id), self._member(conn_id, device))
        except Exception as error:
            log.warning("presence removal failed: %s", type(error).__name__)

    async def list(self, user_id: int) -> list[dict]:
        try:
            raw = await self._redis.zrangebyscore(self._prefix + str(user_id), time.time(), "+inf")
        except Exception as error:
            log.warning("presence read failed: %s", type(error).__name__)
            return []
        return _unique_devices([json.loads(member) for member in raw])

    async def close(self) -> None:
        await self._redis.aclose()


def create_presence(redis_url: str | None) -> Presence:
    return RedisPresence(redis_url) if redis_url else MemoryPresence()
