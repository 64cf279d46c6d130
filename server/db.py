"""The SQLite connections' lifetime, pragmas and schema migrations.

One process holds one writer connection (SQLite has a single writer anyway; the
asyncio lock keeps our own transactions from interleaving on it) and one reader
connection that sees committed data thanks to WAL. Other worker processes have
their own pair; busy_timeout makes them queue politely for the write lock.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable, TypeVar

import aiosqlite

from .data_dir import create_private_file

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        seq           INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL
    );
    CREATE TABLE sessions (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key_hash     BLOB NOT NULL UNIQUE,
        device_name  TEXT NOT NULL,
        created_at   REAL NOT NULL,
        last_seen_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        token_hash   BLOB NOT NULL UNIQUE,
        created_at   REAL NOT NULL,
        last_used_at REAL
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        stored_name TEXT NOT NULL UNIQUE,
        filename    TEXT NOT NULL,
        mime        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE INDEX files_user ON files(user_id, created_at);
    CREATE INDEX files_expiry ON files(expires_at);
    CREATE TABLE items (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('text', 'file')),
        text        TEXT,
        file_id     INTEGER REFERENCES files(id) ON DELETE CASCADE,
        size        INTEGER NOT NULL,
        device_name TEXT NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL,
        UNIQUE (user_id, seq),
        CHECK ((kind = 'text') = (text IS NOT NULL)),
        CHECK ((kind = 'file') = (file_id IS NOT NULL))
    );
    CREATE INDEX items_expiry ON items(expires_at);
    CREATE INDEX items_file ON items(file_id);
    CREATE TABLE shares (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        token_hash BLOB NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX shares_user ON shares(user_id);
    CREATE INDEX shares_file ON shares(file_id);
    CREATE INDEX shares_expiry ON shares(expires_at);
    """,
    # 2: a share link's token is derived from this random nonce and the
    # server's secret key (share_links.derive_token), so sharing the same file
    # again can hand back the same link while the database still holds no
    # usable token. Older rows have none and are simply not reused.
    """
    ALTER TABLE shares ADD COLUMN nonce BLOB;
    """,
    # 3: "Add a device" (server/pairing.py). Only digests of the code and of
    # the waiting device's claim are kept; the opaque payloads (a public key,
    # a wrapped key) live only until the new device has taken the approval.
    """
    CREATE TABLE pairings (
        id               INTEGER PRIMARY KEY,
        user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id       INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        code_digest      BLOB NOT NULL UNIQUE,
        claim_digest     BLOB UNIQUE,
        status           TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'refused')),
        device_name      TEXT,
        request_payload  TEXT,
        approval_payload TEXT,
        created_at       REAL NOT NULL,
        expires_at       REAL NOT NULL
    );
    CREATE INDEX pairings_user ON pairings(user_id);
    CREATE INDEX pairings_expiry ON pairings(expires_at);
    """,
    # 4: end-to-end encryption (issue 19, docs/e2e.md; server/e2e.py). The
    # server keeps only public keys, wrapped keys and opaque blobs. A wrap or
    # a device key belongs to a session or an API token: deleting the device
    # deletes its wraps (CASCADE) in the same statement, and leaves its
    # e2e_devices row with neither id (SET NULL), a mark that a rotation is
    # needed which no crash between two commits can lose.
    """
    CREATE TABLE e2e_accounts (
        id                  INTEGER PRIMARY KEY,
        user_id             INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
        epoch               INTEGER NOT NULL,
        rotation_needed     INTEGER NOT NULL DEFAULT 0,
        recovery_public_key TEXT NOT NULL,
        recovery_sealed_key TEXT NOT NULL,
        enabled_at          REAL NOT NULL
    );
    CREATE TABLE e2e_devices (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id  INTEGER UNIQUE REFERENCES sessions(id) ON DELETE SET NULL,
        token_id    INTEGER UNIQUE REFERENCES api_tokens(id) ON DELETE SET NULL,
        public_key  TEXT NOT NULL,
        attest      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        CHECK (session_id IS NULL OR token_id IS NULL)
    );
    CREATE INDEX e2e_devices_user ON e2e_devices(user_id);
    CREATE TABLE e2e_wraps (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        epoch       INTEGER NOT NULL,
        recipient   TEXT NOT NULL,
        session_id  INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
        token_id    INTEGER REFERENCES api_tokens(id) ON DELETE CASCADE,
        blob        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        UNIQUE (user_id, recipient, epoch),
        CHECK (recipient = CASE WHEN session_id IS NOT NULL THEN 'session:' || session_id
                                WHEN token_id IS NOT NULL THEN 'token:' || token_id
                                ELSE 'recovery' END)
    );
    CREATE TABLE e2e_epochs (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        epoch       INTEGER NOT NULL,
        proof       TEXT NOT NULL,
        created_at  REAL NOT NULL,
        UNIQUE (user_id, epoch)
    );
    CREATE INDEX e2e_wraps_session ON e2e_wraps(session_id);
    CREATE INDEX e2e_wraps_token ON e2e_wraps(token_id);
    ALTER TABLE items ADD COLUMN encrypted_key TEXT;
    ALTER TABLE items ADD COLUMN encrypted_meta TEXT;
    ALTER TABLE items ADD COLUMN ciphertext BLOB;
    ALTER TABLE files ADD COLUMN encrypted_meta TEXT
    """,
    # 5: pairing with keys (docs/e2e.md). A pairing may now be opened by the
    # new device (direction 'request', flow B: no account until a logged-in
    # device takes it), and carries the enrolled device's ephemeral key
    # (offer_payload) beside the new device's (request_payload). The table
    # is made again rather than altered (SQLite cannot drop NOT NULL): its
    # rows live two minutes, so an upgrade costs at most a code typed again.
    """
    DROP TABLE pairings;
    CREATE TABLE pairings (
        id               INTEGER PRIMARY KEY,
        user_id          INTEGER REFERENCES users(id) ON DELETE CASCADE,
        session_id       INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
        direction        TEXT NOT NULL DEFAULT 'offer' CHECK (direction IN ('offer', 'request')),
        code_digest      BLOB NOT NULL UNIQUE,
        claim_digest     BLOB UNIQUE,
        status           TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'refused')),
        device_name      TEXT,
        request_payload  TEXT,
        offer_payload    TEXT,
        approval_payload TEXT,
        created_at       REAL NOT NULL,
        expires_at       REAL NOT NULL,
        CHECK (direction = 'request' OR (user_id IS NOT NULL AND session_id IS NOT NULL)),
        CHECK (status = 'open' OR user_id IS NOT NULL)
    );
    CREATE INDEX pairings_user ON pairings(user_id);
    CREATE INDEX pairings_expiry ON pairings(expires_at)
    """,
)


def _create_private(path: Path) -> None:
    # SQLite gives the WAL, SHM and journal files the database file's mode,
    # so creating that file owner-only first keeps all of them private.
    os.close(create_private_file(path, exclusive=False))


def _casefold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else value


async def _connect(path: Path) -> aiosqlite.Connection:
    await asyncio.to_thread(_create_private, path)
    # isolation_level=None: we issue BEGIN ourselves, so a read-then-write is
    # one BEGIN IMMEDIATE transaction instead of a deferred one that can fail
    # with "database is locked" when it upgrades.
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    # SQLite's own lower()/LIKE fold ASCII only; search must match "été" to "ÉTÉ".
    await conn.create_function("casefold", 1, _casefold, deterministic=True)
    await conn.execute("PRAGMA busy_timeout = 10000")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")
    return conn


async def _migrate(conn: aiosqlite.Connection) -> None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cursor:
            (version,) = await cursor.fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise


T = TypeVar("T")


BUSY_TIMEOUT = 10.0  # seconds a transaction waits for another process's write lock
_BUSY_POLL = 0.0002


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, polling every 0.2 ms while another worker process holds
    the write lock. SQLite's own busy handler sleeps 1, 2, 5, 10, 15 … ms
    between tries, far longer than a text post's transaction holds the lock,
    so two workers posting at once mostly waited on those sleeps (#7 in
    docs/benchmarks.md)."""
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


def _run_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    _begin_immediate(conn)
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class _FetchedCursor:
    """The rows of one finished statement, read like an aiosqlite cursor."""

    rowcount = -1

    def __init__(self, rows) -> None:
        self._rows = list(rows)
        self._next = 0

    async def fetchone(self):
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self):
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows


class _ReadResult:
    def __init__(self, pending) -> None:
        self._pending = pending

    async def _cursor(self) -> _FetchedCursor:
        return _FetchedCursor(await self._pending)

    def __await__(self):
        return self._cursor().__await__()

    async def __aenter__(self) -> _FetchedCursor:
        return await self._cursor()

    async def __aexit__(self, *exc_info) -> None:
        return None


class SnapshotReader:
    """The reader connection, shared by every request of this process.

    Each statement is executed and fully fetched in one trip to the
    connection's thread. With aiosqlite's execute-then-fetch, a statement of
    one request could stay open while another request's statement ran, and
    both would read inside the first one's snapshot, from before a concurrent
    commit: a session created a moment ago would look unknown (a spurious 401).
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters=()) -> _ReadResult:
        return _ReadResult(self._conn.execute_fetchall(sql, parameters))

    async def close(self) -> None:
        await self._conn.close()


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: SnapshotReader | None = None
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        self._writer = await _connect(self.path)
        await self._writer.execute("PRAGMA journal_mode = WAL")
        await _migrate(self._writer)
        self._reader = SnapshotReader(await _connect(self.path))

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT on the writer; ROLLBACK on any error."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")

    async def run_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(conn)` -- plain sqlite3 calls, no awaiting -- as one
        BEGIN IMMEDIATE … COMMIT in the writer connection's thread. Each
        aiosqlite statement is two or three hops between the event loop and
        that thread, and under load every hop waits a whole loop turn; a text
        post was ~20 hops (docs/benchmarks.md, #1, #6, #7). aiosqlite has no
        public call for running a function in its thread, hence `_execute`."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            return await self._writer._execute(_run_transaction, self._writer._conn, work)

    @property
    def reader(self) -> SnapshotReader:
        """Autocommit connection for single-statement reads of committed data."""
        assert self._reader is not None, "database is not open"
        return self._reader

    async def ping(self) -> bool:
        try:
            async with self.reader.execute("SELECT 1") as cursor:
                return (await cursor.fetchone())[0] == 1
        except Exception:
            return False
