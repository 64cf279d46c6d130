"""What differs between SQL engines, kept in one place.

The model functions (server/models/) are written once, in SQL that SQLite and
PostgreSQL both read: `?` placeholders, `RETURNING`, `ON CONFLICT … DO
NOTHING`, `LIMIT … OFFSET`, `LIKE … ESCAPE`, subqueries instead of
engine-specific scalar functions. What cannot be written once lives here, in
a dialect object that db.py hands to every connection:

- connecting, and the settings a connection needs (pragmas, the `casefold`
  SQL function the history search uses);
- how a write transaction takes its lock (`begin_write`): SQLite has one
  write lock per database, taken by BEGIN IMMEDIATE, so every write
  transaction is serialized and `serializes_writes` is true; an engine with
  row locks says false, and models.users.lock_user then takes the user's row
  with SELECT … FOR UPDATE where a transaction reads and then writes
  (quota, file cap, live links);
- placeholders (`statement`): SQLite reads `?` as written; psycopg would get
  them turned into `%s` here;
- the schema and its version (`migrations`, `schema_version`): DDL is the
  one part of SQL that is an engine's own.

PostgreSQL (server/pg_dialect.py, CLOUDBUFFER_DATABASE_URL) is a second
class with these members, not a second copy of any query. SQLAlchemy Core would give this seam ready-made,
at 2.2 to 9.7 times the CPU of a text post's transaction
(docs/architecture.md, Data; `python -m bench.data_layer`).
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .data_dir import create_private_file
from .models.schema import SQLITE_MIGRATIONS


class Dialect(Protocol):
    """The seam: every member an engine must provide, each called on the
    connection's own thread (db.py) with the engine's own connection."""

    name: str
    serializes_writes: bool  # a write transaction holds the whole database (no row locks needed)
    migrations: tuple[str, ...]
    integrity_errors: tuple[type[Exception], ...]  # what a broken constraint raises

    def connect(self, path: Path, *, read_only: bool) -> Any: ...
    def executor(self, conn: Any) -> Callable[[str, Sequence], Any]: ...  # runs one statement, `?` placeholders
    def begin_read(self, conn: Any) -> None: ...
    def begin_write(self, conn: Any) -> None: ...
    def commit(self, conn: Any) -> None: ...
    def rollback(self, conn: Any) -> None: ...
    def schema_version(self, conn: Any) -> int: ...
    def set_schema_version(self, conn: Any, version: int) -> None: ...
    def ping(self, conn: Any) -> bool: ...
    def close(self, conn: Any) -> None: ...
    def lost(self, conn: Any, error: BaseException) -> bool: ...  # the connection is gone, not the statement refused


BUSY_TIMEOUT = 10.0  # seconds a transaction waits for another process's write lock
_BUSY_POLL = 0.0002


def _casefold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else value


class SQLiteDialect:
    name = "sqlite"
    serializes_writes = True  # BEGIN IMMEDIATE takes the database's one write lock
    migrations: tuple[str, ...] = SQLITE_MIGRATIONS
    integrity_errors = (sqlite3.IntegrityError,)

    def connect(self, path: Path, *, read_only: bool) -> sqlite3.Connection:
        # SQLite gives the WAL, SHM and journal files the database file's
        # mode, so creating that file owner-only first keeps all of them
        # private (data_dir.tighten does an older one at start-up). Only a
        # missing file is opened here: closing any descriptor of a file drops
        # every POSIX lock this process holds on it, SQLite's included, and
        # another process closing its last connection would then take the
        # WAL away from under this one's.
        try:
            os.close(create_private_file(path))
        except FileExistsError:
            pass
        # isolation_level=None: transactions are begun here, never implicitly
        # by the sqlite3 module, so a read-then-write is one BEGIN IMMEDIATE
        # transaction instead of a deferred one that can fail with "database
        # is locked" when it upgrades. check_same_thread stays on: a
        # connection lives and dies on its one database thread (db.py).
        conn = sqlite3.connect(path, isolation_level=None, cached_statements=256)
        conn.row_factory = sqlite3.Row
        # SQLite's own lower()/LIKE fold ASCII only; search must match "été" to "ÉTÉ".
        conn.create_function("casefold", 1, _casefold, deterministic=True)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if read_only:
            # The reader cannot write by mistake: db.read() is for reads only.
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
        return conn

    def executor(self, conn: sqlite3.Connection) -> Callable[[str, Any], sqlite3.Cursor]:
        """What runs one statement: `?` placeholders are SQLite's own."""
        return conn.execute

    def begin_read(self, conn: sqlite3.Connection) -> None:
        # A deferred transaction: every statement of one db.read() sees the
        # same snapshot (WAL), and a reader never blocks the writer.
        conn.execute("BEGIN")

    def begin_write(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, polling every 0.2 ms while another worker process
        holds the write lock. SQLite's own busy handler sleeps 1, 2, 5, 10,
        15 … ms between tries, far longer than a text post's transaction
        holds the lock, so two workers posting at once mostly waited on those
        sleeps (#7 in docs/benchmarks.md)."""
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or time.monotonic() > deadline:
                        raise
                time.sleep(_BUSY_POLL)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a failed COMMIT may already have ended it
            conn.execute("ROLLBACK")

    def schema_version(self, conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")

    def ping(self, conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1").fetchone()[0] == 1

    def close(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def lost(self, conn: sqlite3.Connection, error: BaseException) -> bool:
        return False  # a file: nothing to lose a connection to


SQLITE = SQLiteDialect()
