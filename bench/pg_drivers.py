"""`python -m bench.pg_drivers`: which PostgreSQL driver for server/pg_dialect.py
(issue 20: "measure asyncpg and psycopg 3 on #7, choose, and say why").

#7 is text posts from many clients; what the driver decides in it is the
cost of one text post's transaction (server/buffer.py `_write_text`: seq
bump, insert, read back, history trim, COMMIT) from the app's event loop.
Measured here, against a private cluster (tests/pg_server.py), rounds
interleaved, per post: the CPU of this process (the app's side; the server's
is the same SQL for all) and the wall time.

1. psycopg 3, sync, as the app runs it: `await db.write(_write_text, …)`,
   the model functions on db.py's writer thread, one trip from the loop.
2. asyncpg on the event loop: the same five statements, each awaited
   (prepared once and cached by asyncpg, as it does by default).
3. psycopg 3's AsyncConnection on the event loop, the same way.

4. In the seam, no hop from a loop (in-thread, as db.py's writer thread
   runs a job): psycopg 3 sync against asyncpg driven by a private event loop
   of the thread (`run_until_complete` per statement behind the same
   `db.Connection`), which is what keeping the model functions plain and
   synchronous would take with asyncpg.

Sequential posts (one at a time) and 16 posters at once for 16 users, the
latter on one connection for 1 and 3 (db.py has one writer per process) and
on a pool of 4 for asyncpg (what a port to it would use). asyncpg is not a
dependency: `pip install asyncpg` to include its rows.
"""
from __future__ import annotations

import asyncio
import resource
import time

from server import buffer
from server.db import Database
from server.models.items import _SELECT
from server.pg_dialect import POSTGRES, to_pyformat
from tests.pg_server import PostgresServer

POSTS = 1500
ROUNDS = 3
CONCURRENT = 16
TEXT = "x" * 1023 + "\n"
BUMP = "UPDATE users SET seq = seq + 1 WHERE id = ? RETURNING seq"
INSERT = ("INSERT INTO items (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at)"
          " VALUES (?, ?, 'text', ?, NULL, ?, ?, ?, ?) RETURNING id")
READ_BACK = f"{_SELECT} WHERE i.id = ?"
TRIM = ("DELETE FROM items WHERE user_id = ? AND seq <= (SELECT seq FROM items WHERE user_id = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?)")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dollars(sql: str) -> str:
    """`?` as asyncpg's $1, $2, …"""
    out, n = [], 0
    for char in sql:
        if char == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(char)
    return "".join(out)


async def main() -> None:
    server = PostgresServer()
    server.start()
    try:
        url = server.create_database()
        db = Database(url, POSTGRES)
        await db.open()
        users = [await db.write(lambda conn, n=n: conn.value(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', 0) RETURNING id",
            (f"bench{n}",))) for n in range(CONCURRENT)]
        now = time.time()

        async def ours(user_id: int) -> None:
            await db.write(buffer._write_text, user_id, "bench", TEXT, len(TEXT), now, 3600, 20)

        variants = {"psycopg 3 sync on db.py's thread (the app)": (ours, None)}
        try:
            import asyncpg
        except ImportError:
            asyncpg = None
        if asyncpg is not None:
            one = await asyncpg.connect(url)
            pool = await asyncpg.create_pool(url, min_size=4, max_size=4)

            def asyncpg_post(conn_of):
                async def post(user_id: int) -> None:
                    async with conn_of() as conn:
                        async with conn.transaction():
                            seq = await conn.fetchval(dollars(BUMP), user_id)
                            item_id = await conn.fetchval(dollars(INSERT), user_id, seq, TEXT, len(TEXT), "bench",
                                                          now, now + 3600)
                            await conn.fetchrow(dollars(READ_BACK), item_id)
                            await conn.execute(dollars(TRIM), user_id, user_id, 20)
                return post

            class _Same:
                async def __aenter__(self):
                    return one

                async def __aexit__(self, *exc):
                    return False

            lock = asyncio.Lock()  # one connection: one transaction at a time, as db.py's writer

            class _Locked(_Same):
                async def __aenter__(self):
                    await lock.acquire()
                    return one

                async def __aexit__(self, *exc):
                    lock.release()

            variants[f"asyncpg {asyncpg.__version__} on the loop, one connection"] = (
                asyncpg_post(_Locked), None)
            variants[f"asyncpg {asyncpg.__version__} on the loop, a pool of 4 (16 at once only)"] = (
                asyncpg_post(pool.acquire), "concurrent only")
        import psycopg

        aconn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        alock = asyncio.Lock()

        async def psycopg_async(user_id: int) -> None:
            async with alock:
                async with aconn.transaction():
                    seq = (await (await aconn.execute(to_pyformat(BUMP), (user_id,))).fetchone())[0]
                    item_id = (await (await aconn.execute(to_pyformat(INSERT), (
                        user_id, seq, TEXT, len(TEXT), "bench", now, now + 3600))).fetchone())[0]
                    await (await aconn.execute(to_pyformat(READ_BACK), (item_id,))).fetchone()
                    await aconn.execute(to_pyformat(TRIM), (user_id, user_id, 20))

        variants[f"psycopg {psycopg.__version__} AsyncConnection on the loop"] = (psycopg_async, None)

        results: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for post, _ in variants.values():
            for n in range(200):
                await post(users[n % CONCURRENT])
        for _ in range(ROUNDS):
            for name, (post, only) in variants.items():
                if only is None:
                    start_cpu, start = cpu(), time.perf_counter()
                    for _ in range(POSTS):
                        await post(users[0])
                    results.setdefault(name, {}).setdefault("one at a time", []).append(
                        ((cpu() - start_cpu) / POSTS * 1e6, (time.perf_counter() - start) / POSTS * 1e6))
                start_cpu, start = cpu(), time.perf_counter()

                async def poster(user_id: int) -> None:
                    for _ in range(POSTS // CONCURRENT):
                        await post(user_id)

                await asyncio.gather(*(poster(user_id) for user_id in users))
                total = POSTS // CONCURRENT * CONCURRENT
                results.setdefault(name, {}).setdefault(f"{CONCURRENT} at once", []).append(
                    ((cpu() - start_cpu) / total * 1e6, (time.perf_counter() - start) / total * 1e6))
        await db.close()
        await aconn.close()
        if asyncpg is not None:
            await one.close()
            await pool.close()
        print(f"A text post's transaction on PostgreSQL {server.version()}, per post "
              f"(best of {ROUNDS} rounds; CPU of this process / wall time):")
        for name, modes in results.items():
            print(f"  {name}")
            for mode, figures in modes.items():
                best_cpu = min(figure[0] for figure in figures)
                best_wall = min(figure[1] for figure in figures)
                print(f"    {mode}: {best_cpu:.0f} µs CPU, {best_wall:.0f} µs wall")
        if asyncpg is not None:
            await asyncio.to_thread(in_the_seam, url)
    finally:
        server.cleanup()


class _AsyncpgCursor:
    def __init__(self, rows, status: str) -> None:
        self.rows, self.status = rows, status

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows

    def close(self) -> None:
        pass

    @property
    def rowcount(self) -> int:
        tail = self.status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else -1


class _AsyncpgInThread:
    """Just enough of a dialect for db.Connection over asyncpg on a private loop."""

    serializes_writes = False
    name = "asyncpg"

    def __init__(self, loop, conn) -> None:
        self.loop, self.conn, self.statements = loop, conn, {}

    def executor(self, raw):
        def execute(sql: str, params=()):
            statement = self.statements.get(sql)
            if statement is None:
                statement = self.statements[sql] = self.loop.run_until_complete(self.conn.prepare(dollars(sql)))
            rows = self.loop.run_until_complete(statement.fetch(*params))
            return _AsyncpgCursor(rows, statement.get_statusmsg())
        return execute


def in_the_seam(url: str) -> None:
    import asyncpg

    from server.db import Connection

    now = time.time()
    raw = POSTGRES.connect(url, read_only=False)
    ours = Connection(raw, POSTGRES)
    loop = asyncio.new_event_loop()
    other = loop.run_until_complete(asyncpg.connect(url))
    theirs = Connection(None, _AsyncpgInThread(loop, other))
    add_user = "INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', 0) RETURNING id"
    user_ours, user_theirs = ours.value(add_user, ("seam1",)), theirs.value(add_user, ("seam2",))

    def psycopg_post() -> None:
        raw.execute("BEGIN")
        buffer._write_text(ours, user_ours, "bench", TEXT, len(TEXT), now, 3600, 20)
        raw.execute("COMMIT")

    def asyncpg_post() -> None:
        loop.run_until_complete(other.execute("BEGIN"))
        buffer._write_text(theirs, user_theirs, "bench", TEXT, len(TEXT), now, 3600, 20)
        loop.run_until_complete(other.execute("COMMIT"))

    variants = {"psycopg 3 sync, in-thread": psycopg_post,
                f"asyncpg {asyncpg.__version__} on the thread's own loop, in-thread": asyncpg_post}
    results: dict[str, list[tuple[float, float]]] = {}
    for post in variants.values():
        for _ in range(200):
            post()
    for _ in range(ROUNDS):
        for name, post in variants.items():
            start_cpu, start = cpu(), time.perf_counter()
            for _ in range(POSTS):
                post()
            results.setdefault(name, []).append(
                ((cpu() - start_cpu) / POSTS * 1e6, (time.perf_counter() - start) / POSTS * 1e6))
    print("In the seam (the same model functions on a db.Connection, no hop):")
    for name, figures in results.items():
        print(f"  {name}: {min(f[0] for f in figures):.0f} µs CPU, {min(f[1] for f in figures):.0f} µs wall")
    loop.run_until_complete(other.close())
    loop.close()
    raw.close()


if __name__ == "__main__":
    asyncio.run(main())
