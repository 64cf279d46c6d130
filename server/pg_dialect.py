"""PostgreSQL behind the dialect seam (server/dialect.py), through psycopg 3.

The model functions are plain synchronous functions run on the database's
own threads (db.py), so the driver is psycopg 3's synchronous connection,
one per thread: no event loop to hop onto per statement, and the whole
transaction stays one trip from the app's loop. asyncpg was measured against
it for a text post's transaction (`python -m bench.pg_drivers`,
docs/benchmarks.md): it would need either an event loop on the database
thread or every model function made async.

What differs from SQLite, all of it here:
- `?` placeholders become psycopg's `%s` (and a literal `%` is doubled),
  once per distinct statement (cached);
- rows answer both `row[0]` and `dict(row)`, as sqlite3.Row does;
- `numeric` (what SUM of a bigint gives) comes back as an int, as SQLite's;
- writes run READ COMMITTED and take row locks (models.users.lock_user,
  the seq UPDATE), so `serializes_writes` is false; a read is one REPEATABLE
  READ, READ ONLY snapshot, like SQLite's WAL read;
- the schema's version is a row of `cloudbuffer_schema`, read and written
  under a transaction-level advisory lock so hosts starting together
  migrate one after the other;
- a dropped server connection (PostgreSQL restarted or gone) is told apart
  from a refused statement (`lost`), so db.py can open a new connection
  for the next job and answer this one with DatabaseUnavailable (503).
"""
from __future__ import annotations

from typing import Callable, Sequence

import psycopg
from psycopg import pq
from psycopg.adapt import Loader

from .db import DatabaseUnavailable
from .models.schema_postgres import POSTGRES_MIGRATIONS

# Any constant: the key of the advisory lock that migrations take.
MIGRATION_LOCK = 0x636C6F7564627566  # "cloudbuf"
CONNECT_TIMEOUT = 5  # seconds; a host that cannot reach the database says so quickly


class _NumericAsNumber(Loader):
    """SUM() of a bigint is `numeric`: an int when whole, else a float, not a Decimal."""

    def load(self, data) -> int | float:
        text = bytes(data)
        return float(text) if b"." in text or b"e" in text.lower() else int(text)


class Row:
    """A result row by position and by column name, like sqlite3.Row."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: Sequence, names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self):
        return self._names.keys()

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values))!r})"


def _row_factory(cursor: psycopg.Cursor) -> Callable[[Sequence], Row]:
    description = cursor.description or ()
    names = {column.name: index for index, column in enumerate(description)}
    return lambda values: Row(values, names)


def to_pyformat(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, and literal `%` doubled; what is
    inside quotes ('…', "…") is left as it is, apart from the doubling."""
    out = []
    quote = None
    for char in sql:
        if char == "%":
            out.append("%%")
            continue
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append(char)
    return "".join(out)


class PostgresDialect:
    name = "postgresql"
    serializes_writes = False  # row locks: models.users.lock_user takes the user's row
    migrations: tuple[str, ...] = POSTGRES_MIGRATIONS
    integrity_errors = (psycopg.errors.IntegrityError,)

    def __init__(self) -> None:
        self._statements: dict[str, str] = {}

    def connect(self, url: str, *, read_only: bool) -> psycopg.Connection:
        try:
            conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_TIMEOUT,
                                   application_name="cloudbuffer")
        except psycopg.OperationalError as error:
            first_line = (str(error).strip().splitlines() or ["no answer"])[0]
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {first_line}") from None
        conn.adapters.register_loader("numeric", _NumericAsNumber)
        return conn

    def executor(self, conn: psycopg.Connection) -> Callable[[str, Sequence], psycopg.Cursor]:
        statements = self._statements

        def execute(sql: str, params: Sequence = ()) -> psycopg.Cursor:
            translated = statements.get(sql)
            if translated is None:
                translated = statements[sql] = to_pyformat(sql)
            return conn.execute(translated, params)

        return execute

    def begin_read(self, conn: psycopg.Connection) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def begin_write(self, conn: psycopg.Connection) -> None:
        conn.execute("BEGIN")

    def commit(self, conn: psycopg.Connection) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            return
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.OperationalError:
                pass  # the connection went while rolling back: the server rolls back for it

    def lost(self, conn: psycopg.Connection, error: BaseException) -> bool:
        """The connection is gone (not a statement refused)."""
        return conn.closed or conn.broken or isinstance(error, psycopg.OperationalError)

    def schema_version(self, conn: psycopg.Connection) -> int:
        # Held to the end of the migrating transaction: another host or
        # worker starting now waits here, then finds the schema done.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS cloudbuffer_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM cloudbuffer_schema").fetchone()
        return 0 if row is None else row[0]

    def set_schema_version(self, conn: psycopg.Connection, version: int) -> None:
        if conn.execute("UPDATE cloudbuffer_schema SET version = %s", (version,)).rowcount == 0:
            conn.execute("INSERT INTO cloudbuffer_schema (version) VALUES (%s)", (version,))

    def ping(self, conn: psycopg.Connection) -> bool:
        return conn.execute("SELECT 1").fetchone()[0] == 1

    def close(self, conn: psycopg.Connection) -> None:
        conn.close()


POSTGRES = PostgresDialect()
