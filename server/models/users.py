from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    seq: int
    created_at: float


def _user(row: aiosqlite.Row | None) -> User | None:
    return None if row is None else User(**dict(row))


async def select_user_by_id(conn: aiosqlite.Connection, user_id: int) -> User | None:
    async with conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)) as cursor:
        return _user(await cursor.fetchone())


async def select_user_by_username(conn: aiosqlite.Connection, username: str) -> User | None:
    async with conn.execute("SELECT * FROM users WHERE username = ?", (username,)) as cursor:
        return _user(await cursor.fetchone())


async def insert_user(conn: aiosqlite.Connection, username: str, password_hash: str) -> User | None:
    """None when the username is taken (case-insensitively)."""
    async with conn.execute(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (username) DO NOTHING RETURNING *",
        (username, password_hash, time.time()),
    ) as cursor:
        return _user(await cursor.fetchone())


async def update_user_password(conn: aiosqlite.Connection, user_id: int, password_hash: str) -> bool:
    cursor = await conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    return cursor.rowcount == 1


async def delete_user(conn: aiosqlite.Connection, user_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return cursor.rowcount == 1


async def increment_user_seq(conn: aiosqlite.Connection, user_id: int) -> int:
    """Next seq; call inside the transaction that writes the buffer."""
    async with conn.execute(
        "UPDATE users SET seq = seq + 1 WHERE id = ? RETURNING seq", (user_id,)
    ) as cursor:
        (seq,) = await cursor.fetchone()
    return seq


async def select_user_seq(conn: aiosqlite.Connection, user_id: int) -> int:
    async with conn.execute("SELECT seq FROM users WHERE id = ?", (user_id,)) as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else row[0]
