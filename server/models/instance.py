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
