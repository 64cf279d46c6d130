"""What every host sharing a database must agree on, kept in the database
(only a shared one, PostgreSQL, has the table: schema_postgres.py).

The secret key signs session cookies and derives share-link tokens, so hosts
with different keys would each refuse the others' cookies and links: the
first host to start records a fingerprint of its key, and every later one
compares (server/instance.py)."""
from __future__ import annotations

from ..db import Connection

KEY_FINGERPRINT = "secret_key_fingerprint"


def claim_value(conn: Connection, name: str, value: str) -> str:
    """The value recorded under `name`: `value` if none was, else the one
    recorded first (a host racing this one may have just written it)."""
    conn.run("INSERT INTO cloudbuffer_instance (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
             (name, value))
    return conn.value("SELECT value FROM cloudbuffer_instance WHERE name = ?", (name,))


SWEEPER_LOCK = 0x636C6F7564737770  # any constant: the advisory lock only one host's sweeper holds


def try_lock(conn: Connection, key: int) -> bool:
    """Take a session-level advisory lock if it is free: held by this
    connection until unlock() or until the connection ends (a dead host's
    lock goes with it)."""
    return bool(conn.value("SELECT pg_try_advisory_lock(?)", (key,)))


def unlock(conn: Connection, key: int) -> None:
    conn.value("SELECT pg_advisory_unlock(?)", (key,))
