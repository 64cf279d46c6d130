"""The database layer: the shared reader never serves a stale snapshot."""
from __future__ import annotations

import asyncio

from server.db import Database


async def test_reader_sees_commits_made_while_other_reads_are_in_flight(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    try:
        async with db.transaction() as conn:
            for n in range(200):
                await conn.execute("INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', 0)",
                                   (f"user{n}",))
        stop = asyncio.Event()

        async def busy_reader() -> None:
            # Many overlapping multi-row reads, as concurrent requests make.
            while not stop.is_set():
                async with db.reader.execute("SELECT * FROM users") as cursor:
                    await cursor.fetchone()
                    await asyncio.sleep(0)
                    await cursor.fetchall()

        readers = [asyncio.create_task(busy_reader()) for _ in range(4)]
        try:
            for n in range(100):
                async with db.transaction() as conn:
                    await conn.execute("INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', 0)",
                                       (f"new{n}",))
                async with db.reader.execute("SELECT id FROM users WHERE username = ?", (f"new{n}",)) as cursor:
                    assert await cursor.fetchone() is not None, f"commit {n} not visible to the reader"
        finally:
            stop.set()
            await asyncio.gather(*readers)
    finally:
        await db.close()
