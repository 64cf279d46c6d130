"""Which of a user's devices are online now, across workers and hosts.

Each open socket is an entry with a deadline; its worker refreshes the deadline
while the socket lives, so a worker that dies takes its entries with it after
PRESENCE_TTL. With Redis the entries are a sorted set per user (score =
deadline); in memory they are a dict. Both answer the same `list`.
"""
from __future__ import annotations

import asyncio
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
    async def connections(self, user_id: int) -> int | None: ...
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

    async def connections(self, user_id: int) -> int | None:
        return len(self._entries.get(user_id, {}))

    async def close(self) -> None:
        self._entries.clear()


class RedisPresence:
    """Presence in Redis, batched: every add, refresh, remove and list made in
    the same event-loop tick goes out as one pipeline (one round trip). When
    500 devices connect at once, or a `_presence` event makes every local
    socket of a user re-read the list, this is one request instead of
    hundreds, and the connection pool never runs dry (docs/benchmarks.md).
    Writes are sent before reads in the pipeline, so a list asked for after a
    write sees it."""

    def __init__(self, url: str, key_prefix: str = "cloudbuffer:presence:") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = key_prefix
        self._writes: list[tuple[str, str, str]] = []  # (op, key, member), in call order
        self._reads: dict[int, asyncio.Future] = {}  # user id -> the answer of the pending batch
        self._batch: asyncio.Future | None = None  # done when the pending batch was sent

    def _member(self, conn_id: str, device: dict) -> str:
        return json.dumps({"conn": conn_id, **device}, separators=(",", ":"), sort_keys=True)

    def _schedule(self) -> asyncio.Future:
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            loop.create_task(self._flush(self._batch))
        return self._batch

    async def _flush(self, batch: asyncio.Future) -> None:
        await asyncio.sleep(0)  # let the rest of this tick join the batch
        writes, self._writes = self._writes, []
        reads, self._reads = self._reads, {}
        self._batch = None
        answers = None
        try:
            now = time.time()
            async with self._redis.pipeline(transaction=False) as pipe:
                touched = set()
                for op, key, member in writes:
                    if op == "add":
                        pipe.zadd(key, {member: now + PRESENCE_TTL})
                        touched.add(key)
                    else:
                        pipe.zrem(key, member)
                for key in touched:
                    pipe.zremrangebyscore(key, "-inf", now)
                    pipe.expire(key, int(PRESENCE_TTL * 2))
                for user_id in reads:
                    pipe.zrangebyscore(self._prefix + str(user_id), now, "+inf")
                answers = await pipe.execute() if len(pipe) else []
            answers = answers[len(answers) - len(reads):]
        except Exception as error:  # presence is best effort; sync must go on without it
            log.warning("presence update failed: %s", type(error).__name__)
        finally:
            # Whatever happened (even a cancellation), nobody is left waiting.
            for index, future in enumerate(reads.values()):
                if not future.done():
                    future.set_result(None if answers is None else answers[index])
            if not batch.done():
                batch.set_result(None)

    async def _write(self, op: str, user_id: int, conn_id: str, device: dict) -> None:
        self._writes.append((op, self._prefix + str(user_id), self._member(conn_id, device)))
        await asyncio.shield(self._schedule())

    async def add(self, user_id: int, conn_id: str, device: dict) -> None:
        await self._write("add", user_id, conn_id, device)

    refresh = add

    async def remove(self, user_id: int, conn_id: str, device: dict) -> None:
        await self._write("remove", user_id, conn_id, device)

    async def _members(self, user_id: int) -> list | None:
        future = self._reads.get(user_id)
        if future is None:
            future = self._reads[user_id] = asyncio.get_running_loop().create_future()
            self._schedule()
        return await asyncio.shield(future)

    async def list(self, user_id: int) -> list[dict]:
        raw = await self._members(user_id)
        if raw is None:
            return []
        return _unique_devices([json.loads(member) for member in raw])

    async def connections(self, user_id: int) -> int | None:
        """Live sockets of the user on every worker and host (None when Redis
        cannot say). Entries of a worker that died linger until PRESENCE_TTL."""
        raw = await self._members(user_id)
        return None if raw is None else len(raw)

    async def close(self) -> None:
        if self._batch is not None and not self._batch.done():
            await asyncio.wait([self._batch], timeout=2)
        await self._redis.aclose()


def create_presence(redis_url: str | None) -> Presence:
    return RedisPresence(redis_url) if redis_url else MemoryPresence()
