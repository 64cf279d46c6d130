from __future__ import annotations

import time
from dataclasses import dataclass

from ..db import Connection


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    seq: int
    created_at: float


_COLUMNS = "id, username, password_hash, seq, created_at"


def _user(row) -> User | None:
    return None if row is None else User(**dict(row))


def select_user_by_id(conn: Connection, user_id: int) -> User | None:
    return _user(conn.one(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,)))


def select_user_by_username(conn: Connection, username: str) -> User | None:
    return _user(conn.one(f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)))


def insert_user(conn: Connection, username: str, password_hash: str) -> User | None:
    """None when the username is taken (case-insensitively: the schema's collation)."""
    return _user(conn.one(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)"
        f" ON CONFLICT (username) DO NOTHING RETURNING {_COLUMNS}",
        (username, password_hash, time.time()),
    ))


def update_user_password(conn: Connection, user_id: int, password_hash: str) -> bool:
    return conn.run("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)) == 1


def delete_user(conn: Connection, user_id: int) -> bool:
    return conn.run("DELETE FROM users WHERE id = ?", (user_id,)) == 1


def increment_user_seq(conn: Connection, user_id: int) -> int:
    """Next seq; call inside the transaction that writes the buffer, so seq
    order is commit order (the UPDATE holds the user's row, or with SQLite
    the database, until the commit)."""
    return conn.value("UPDATE users SET seq = seq + 1 WHERE id = ? RETURNING seq", (user_id,))


def lock_user(conn: Connection, user_id: int) -> None:
    """Hold the user's row until the transaction ends, before reading what
    a write then depends on (quota, file cap, live links), so two
    transactions of one user cannot both pass a check. With SQLite the
    write transaction already holds the whole database."""
    if not conn.dialect.serializes_writes:
        conn.one("SELECT id FROM users WHERE id = ? FOR UPDATE", (user_id,))


def select_user_seq(conn: Connection, user_id: int) -> int:
    return conn.value("SELECT seq FROM users WHERE id = ?", (user_id,)) or 0
