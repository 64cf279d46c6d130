"""`python -m bench.data_layer`: the two figures behind server/db.py's choices
(docs/architecture.md, Data), measured in one process, rounds interleaved.

1. One trip to the database thread and back, CPU per call: server/db.py's own
   thread (`Database.ping`, and `Database.read`, which adds the read
   transaction), a single-thread executor through `loop.run_in_executor`
   (datasette's way), and aiosqlite's `execute_fetchall` (what db.py used).
2. A text post's transaction (server/buffer.py `_write_text`: seq bump,
   insert, read back, history trim) run in-thread, no hop: the model
   functions on a `db.Connection`, against SQLAlchemy Core 2 statements doing
   the same (built per call, as model code would write them, and built once),
   and SQLAlchemy's `exec_driver_sql` with the same SQL strings.

aiosqlite and SQLAlchemy are not dependencies: install them into the venv to
include their rows (`pip install aiosqlite sqlalchemy`); rows whose package
is missing are left out. The machine is shared: compare rows of one run.
"""
from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server import buffer
from server.db import Connection, Database
from server.dialect import SQLITE

HOPS = 20000
POSTS = 3000
ROUNDS = 3
TEXT = "x" * 1023 + "\n"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one(conn: Connection) -> int:
    return conn.value("SELECT 1")


async def hops(path: Path) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}

    async def measure(name: str, call) -> None:
        for _ in range(200):
            await call()
        start = cpu()
        for _ in range(HOPS):
            await call()
        results.setdefault(name, []).append((cpu() - start) / HOPS * 1e6)

    db = Database(path)
    await db.open()
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    raw = await loop.run_in_executor(executor, lambda: SQLITE.connect(path, read_only=True))
    try:
        import aiosqlite
    except ImportError:
        aiosqlite = None
    other = await aiosqlite.connect(path, isolation_level=None) if aiosqlite else None
    try:
        for _ in range(ROUNDS):
            await measure("db.py thread: Database.ping (one statement)", db.ping)
            await measure("db.py thread: Database.read (BEGIN, one statement, ROLLBACK)", lambda: db.read(_one))
            await measure("single-thread executor: loop.run_in_executor",
                          lambda: loop.run_in_executor(executor, lambda: raw.execute("SELECT 1").fetchall()))
            if other is not None:
                await measure(f"aiosqlite {aiosqlite.__version__}: execute_fetchall",
                              lambda: other.execute_fetchall("SELECT 1"))
    finally:
        if other is not None:
            await other.close()
        await loop.run_in_executor(executor, raw.close)
        executor.shutdown()
        await db.close()
    return results


def posts(path: Path) -> dict[str, list[float]]:
    conn = Connection(SQLITE.connect(path, read_only=False), SQLITE)
    user_id = conn.value("INSERT INTO users (username, password_hash, created_at) VALUES ('bench', 'x', 0)"
                         " RETURNING id")
    now = time.time()

    def ours() -> None:
        SQLITE.begin_write(conn.raw)
        buffer._write_text(conn, user_id, "bench", TEXT, len(TEXT), now, 3600, 20)
        SQLITE.commit(conn.raw)

    variants = {"server/models on db.Connection": ours}
    try:
        variants.update(_sqlalchemy_variants(path, user_id, now))
    except ImportError:
        pass
    results: dict[str, list[float]] = {}
    for post in variants.values():
        for _ in range(300):
            post()
    for _ in range(ROUNDS):
        for name, post in variants.items():
            start = cpu()
            for _ in range(POSTS):
                post()
            results.setdefault(name, []).append((cpu() - start) / POSTS * 1e6)
    conn.raw.close()
    return results


def _sqlalchemy_variants(path: Path, user_id: int, now: float) -> dict:
    import sqlalchemy as sa
    from sqlalchemy import Column, Float, Integer, MetaData, Table, Text, bindparam, delete, insert, select, update

    metadata = MetaData()
    users = Table("users", metadata, Column("id", Integer, primary_key=True), Column("seq", Integer))
    items = Table("items", metadata, *(Column(name, Integer) for name in ("id", "user_id", "seq", "file_id", "size")),
                  *(Column(name, Text) for name in ("kind", "text", "device_name")),
                  *(Column(name, Float) for name in ("created_at", "expires_at")))
    files = Table("files", metadata, Column("id", Integer), Column("filename", Text), Column("mime", Text),
                  Column("stored_name", Text))
    engine = sa.create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT")

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    conn = engine.connect()

    def item_by_id(item_id):
        joined = items.outerjoin(files, files.c.id == items.c.file_id)
        return select(items, files.c.filename, sa.func.coalesce(files.c.mime, "text/plain; charset=utf-8"),
                      files.c.stored_name).select_from(joined).where(items.c.id == item_id)

    def trim(keep):
        newest = (select(items.c.seq).where(items.c.user_id == user_id).order_by(items.c.seq.desc())
                  .limit(1).offset(keep).scalar_subquery())
        return delete(items).where(items.c.user_id == user_id, items.c.seq <= newest)

    def built_per_call() -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        seq = conn.execute(update(users).where(users.c.id == user_id).values(seq=users.c.seq + 1)
                           .returning(users.c.seq)).scalar_one()
        item_id = conn.execute(insert(items).values(user_id=user_id, seq=seq, kind="text", text=TEXT, size=len(TEXT),
                                                    device_name="bench", created_at=now, expires_at=now + 3600)
                               .returning(items.c.id)).scalar_one()
        conn.execute(item_by_id(item_id)).mappings().one()
        conn.execute(trim(20))
        conn.exec_driver_sql("COMMIT")

    bump = update(users).where(users.c.id == bindparam("uid")).values(seq=users.c.seq + 1).returning(users.c.seq)
    add = insert(items).values(user_id=bindparam("uid"), seq=bindparam("seq"), kind="text", text=bindparam("t"),
                               size=bindparam("size"), device_name=bindparam("dev"), created_at=bindparam("c"),
                               expires_at=bindparam("e")).returning(items.c.id)
    read_back = item_by_id(bindparam("item"))
    trim_once = trim(20)

    def built_once() -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        seq = conn.execute(bump, {"uid": user_id}).scalar_one()
        item_id = conn.execute(add, {"uid": user_id, "seq": seq, "t": TEXT, "size": len(TEXT), "dev": "bench",
                                     "c": now, "e": now + 3600}).scalar_one()
        conn.execute(read_back, {"item": item_id}).mappings().one()
        conn.execute(trim_once)
        conn.exec_driver_sql("COMMIT")

    from server.models.items import _SELECT

    def driver_sql() -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        seq = conn.exec_driver_sql("UPDATE users SET seq = seq + 1 WHERE id = ? RETURNING seq", (user_id,)).scalar_one()
        item_id = conn.exec_driver_sql(
            "INSERT INTO items (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at)"
            " VALUES (?, ?, 'text', ?, NULL, ?, ?, ?, ?) RETURNING id",
            (user_id, seq, TEXT, len(TEXT), "bench", now, now + 3600)).scalar_one()
        conn.exec_driver_sql(f"{_SELECT} WHERE i.id = ?", (item_id,)).mappings().one()
        conn.exec_driver_sql("DELETE FROM items WHERE user_id = ? AND seq <= (SELECT seq FROM items WHERE user_id = ?"
                             " ORDER BY seq DESC LIMIT 1 OFFSET ?)", (user_id, user_id, 20))
        conn.exec_driver_sql("COMMIT")

    return {f"SQLAlchemy {sa.__version__} Core, statements built per call": built_per_call,
            f"SQLAlchemy {sa.__version__} Core, statements built once": built_once,
            f"SQLAlchemy {sa.__version__} exec_driver_sql, the same SQL": driver_sql}


def _print(title: str, results: dict[str, list[float]]) -> None:
    print(title)
    for name, values in results.items():
        figures = ", ".join(f"{value:.1f}" for value in values)
        print(f"  {name}: {min(values):.1f} µs CPU (rounds: {figures})")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cloudbuffer-data-layer-") as tmp:
        path = Path(tmp) / "bench.sqlite3"
        _print(f"one trip to the database thread, {HOPS:,} calls per round:", asyncio.run(hops(path)))
        _print(f"a text post's transaction in-thread, {POSTS:,} per round:", posts(path))


if __name__ == "__main__":
    main()
