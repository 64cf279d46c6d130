"""The database: one way to read, one way to write.

    user = await db.read(users_model.select_user_by_id, user_id)
    item = await db.write(store, principal, text)   # store(conn, principal, text)

Both run a plain, synchronous function of a `Connection` (and the arguments
given, as asyncio.to_thread passes them) on a thread of the database's own, as datasette's `execute_fn` and
`execute_write_fn` do, so a request is one trip to that thread however many
statements it makes; each trip between the event loop and a thread waits a
loop turn under load, and a text post used to be ~20 of them with an async
cursor per statement (docs/benchmarks.md, #1, #6, #7).

- `read(fn, *args, **kwargs)`: on the reader connection, in one read transaction, so
  every statement of `fn` sees the same committed snapshot (WAL); the reader
  is query-only, a write there fails.
- `write(fn, *args, **kwargs)`: on the writer connection, as one transaction (the
  dialect's BEGIN IMMEDIATE … COMMIT; ROLLBACK if `fn` or the commit raises).
  There is one writer thread per process, so this process's writes run one
  after the other in the order they were asked for; other worker processes
  queue for SQLite's write lock (dialect.begin_write).

A write's outcome is always known to its caller: if the awaiting task is
cancelled while the transaction runs (a client gone mid-request), `write`
still waits for the transaction's end, then raises CancelledError only if it
committed, and the transaction's own error if it rolled back. So clean-up
after a failed write (unlinking an upload's file) never runs for a write
that committed.

Each connection is opened, used and closed on its one thread (a queue and
`call_soon_threadsafe`, as aiosqlite does inside, at the same CPU per trip;
aiosqlite is no longer used: its public API cannot run a function on its
thread, and this is 40 lines. A single-thread executor through
`loop.run_in_executor` costs ~14 µs more per trip: `python -m
bench.data_layer`). SQL is written only in server/models; what differs between
engines is in server/dialect.py.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from .dialect import SQLITE, Dialect

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database server cannot be reached, or the connection to it went
    while a job ran (PostgreSQL restarted, the network cut). The job's
    transaction did not commit, unless the connection went during the COMMIT
    itself, which no client can tell (the sweeper then finds a file row
    whose upload was removed and drops it). The next job opens a new
    connection, so the database coming back needs no restart; the error path
    answers 503 meanwhile (errors.py)."""


class Connection:
    """What a model function is given: one statement at a time, fully
    fetched, with the dialect at hand (`conn.dialect`). `sql` is written with
    `?` placeholders; `params` is a sequence."""

    __slots__ = ("raw", "dialect", "_statement")

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw  # the engine's own connection, for the dialect's use
        self.dialect = dialect
        self._statement = dialect.executor(raw)

    def one(self, sql: str, params: Sequence = ()) -> Any:
        """The first row (a mapping by column name), or None."""
        cursor = self._statement(sql, params)
        row = cursor.fetchone()
        cursor.close()  # a RETURNING statement is finished, not left open
        return row

    def all(self, sql: str, params: Sequence = ()) -> list:
        return self._statement(sql, params).fetchall()

    def value(self, sql: str, params: Sequence = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.one(sql, params)
        return None if row is None else row[0]

    def column(self, sql: str, params: Sequence = ()) -> list:
        """The first column of every row."""
        return [row[0] for row in self._statement(sql, params).fetchall()]

    def run(self, sql: str, params: Sequence = ()) -> int:
        """A statement without result rows; how many rows it changed."""
        return self._statement(sql, params).rowcount


class _Job:
    __slots__ = ("call", "args", "loop", "future", "result", "error", "finished")

    def __init__(self, call: Callable, args: tuple, loop: asyncio.AbstractEventLoop) -> None:
        self.call = call
        self.args = args
        self.loop = loop
        self.future = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False

    def deliver(self) -> None:
        """On the event loop, once the thread is done with the job."""
        self.finished = True
        if not self.future.done():  # a read whose caller was cancelled
            if self.error is None:
                self.future.set_result(self.result)
            else:
                self.future.set_exception(self.error)


_CLOSE = object()


class _ConnectionThread:
    """One connection, opened, used and closed on a thread of its own."""

    def __init__(self, name: str, connect: Callable[[], Connection]) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._connect = connect
        self._connection: Connection | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable, *args: Any) -> _Job:
        job = _Job(call, args, asyncio.get_running_loop())
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job.call is _CLOSE:
                    if self._connection is not None:
                        self._connection.dialect.close(self._connection.raw)
                        self._connection = None
                else:
                    job.result = self._call(job)
            except BaseException as error:  # handed to the awaiting task, never lost in this thread
                job.error = self._lost(error)
            try:
                job.loop.call_soon_threadsafe(job.deliver)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
            if job.call is _CLOSE:
                return

    def _call(self, job: _Job) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        try:
            return job.call(self._connection, *job.args)
        except _NotBegun as not_begun:
            # The connection had gone while idle (the server restarted since
            # the last job): nothing of this job ran, so it may run again on
            # a new connection, once.
            error = self._lost(not_begun.__cause__)
            if not isinstance(error, DatabaseUnavailable):
                raise not_begun.__cause__ from None
            self._connection = self._connect()
            return job.call(self._connection, *job.args)

    def _lost(self, error: BaseException) -> BaseException:
        """A connection the server dropped is closed here (the next job opens
        a new one) and its job told DatabaseUnavailable; any other error is
        the job's own."""
        if isinstance(error, _NotBegun):
            error = error.__cause__
        conn = self._connection
        if conn is None or isinstance(error, DatabaseUnavailable) or not conn.dialect.lost(conn.raw, error):
            return error
        self._connection = None
        try:
            conn.dialect.close(conn.raw)
        except Exception:  # already half-closed by the failure
            pass
        unavailable = DatabaseUnavailable(f"the connection to the database was lost: {error}".strip())
        unavailable.__cause__ = error
        return unavailable


class _NotBegun(Exception):
    """The transaction's BEGIN failed: nothing of the job ran."""


def _begin(conn: Connection, begin: Callable[[Any], None]) -> None:
    try:
        begin(conn.raw)
    except Exception as error:
        raise _NotBegun() from error


def _read(conn: Connection, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    _begin(conn, conn.dialect.begin_read)
    try:
        return fn(conn, *args, **kwargs)
    finally:
        conn.dialect.rollback(conn.raw)  # ends the snapshot; a read has nothing to commit


def _write(conn: Connection, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    _begin(conn, conn.dialect.begin_write)
    try:
        result = fn(conn, *args, **kwargs)
        conn.dialect.commit(conn.raw)
    except BaseException:
        conn.dialect.rollback(conn.raw)
        raise
    return result


def _migrate(conn: Connection) -> int:
    """Apply the dialect's migrations the database lacks (in the write
    transaction of Database.open); returns the schema version."""
    dialect = conn.dialect
    version = dialect.schema_version(conn.raw)
    for number, script in enumerate(dialect.migrations[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.run(statement)
        dialect.set_schema_version(conn.raw, number)
    return len(dialect.migrations)


def _ping(conn: Connection) -> bool:
    return conn.dialect.ping(conn.raw)


class Database:
    """`target` is what the dialect connects to: SQLite's file, PostgreSQL's URL."""

    def __init__(self, target: Path | str, dialect: Dialect = SQLITE) -> None:
        self.path = target
        self.dialect = dialect
        self._writer: _ConnectionThread | None = None
        self._reader: _ConnectionThread | None = None

    def _thread(self, role: str, read_only: bool) -> _ConnectionThread:
        def connect() -> Connection:
            return Connection(self.dialect.connect(self.path, read_only=read_only), self.dialect)

        return _ConnectionThread(f"cloudbuffer-db-{role}", connect)

    async def open(self) -> None:
        self._writer = self._thread("writer", read_only=False)
        # Migrated before the reader exists: it never sees an old schema.
        await self.write(_migrate)
        self._reader = self._thread("reader", read_only=True)

    async def close(self) -> None:
        threads = [thread for thread in (self._reader, self._writer) if thread is not None]
        self._reader = self._writer = None
        for thread in threads:
            await thread.submit(_CLOSE).future

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(conn, *args, **kwargs)` on the reader, in one snapshot of committed data."""
        assert self._reader is not None, "database is not open"
        return await self._reader.submit(_read, fn, args, kwargs).future

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(conn, *args, **kwargs)` as one write transaction; see the
        module's docstring for what a cancelled caller is told."""
        assert self._writer is not None, "database is not open"
        job = self._writer.submit(_write, fn, args, kwargs)
        try:
            return await job.future
        except asyncio.CancelledError as cancelled:
            # The transaction runs to its end on the thread whatever happens
            # here: wait for that end (through further cancellations too).
            while not job.finished:
                job.future = job.loop.create_future()
                try:
                    await job.future
                except BaseException:  # a further cancellation, or the outcome read below
                    pass
            if job.error is not None and not isinstance(job.error, asyncio.CancelledError):
                raise job.error from cancelled
            raise

    @property
    def shared(self) -> bool:
        """Whether several hosts may use this database (a server, not a file)."""
        return not self.dialect.serializes_writes

    async def ping(self) -> bool:
        if self._reader is None:
            return False
        for _ in range(2):  # once more on a new connection if the reader's had gone
            try:
                return await self._reader.submit(_ping).future
            except DatabaseUnavailable:
                continue
            except Exception:
                return False
        return False


def database_for(settings) -> Database:
    """The database the settings name: CLOUDBUFFER_DATABASE_URL's PostgreSQL,
    or by default the SQLite file in the data dir."""
    if settings.database_url:
        from .pg_dialect import POSTGRES  # psycopg is imported only by servers that use it

        return Database(settings.database_url, POSTGRES)
    return Database(settings.data_dir / "cloudbuffer.sqlite3")
