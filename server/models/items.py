"""Buffer items: a user's history of text and files; the newest is the buffer."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from .users import increment_user_seq


@dataclass(frozen=True)
class Item:
    id: int
    user_id: int
    seq: int
    kind: str
    text: str | None
    file_id: int | None
    size: int
    device_name: str
    created_at: float
    expires_at: float
    filename: str | None
    mime: str
    stored_name: str | None
    # An end-to-end encrypted item (docs/e2e.md): its key and meta blobs
    # (b64u), and a text's body blob (its `text` is then "").
    encrypted_key: str | None = None
    encrypted_meta: str | None = None
    ciphertext: bytes | None = None


_SELECT = (
    "SELECT i.id, i.user_id, i.seq, i.kind, i.text, i.file_id, i.size, i.device_name, i.created_at,"
    " i.expires_at, f.filename, COALESCE(f.mime, 'text/plain; charset=utf-8') AS mime, f.stored_name,"
    " i.encrypted_key, i.encrypted_meta, i.ciphertext"
    " FROM items i LEFT JOIN files f ON f.id = i.file_id"
)


def _item(row: aiosqlite.Row | None) -> Item | None:
    return None if row is None else Item(**dict(row))


async def insert_item(
    conn: aiosqlite.Connection,
    user_id: int,
    *,
    kind: str,
    size: int,
    device_name: str,
    created_at: float,
    expires_at: float,
    text: str | None = None,
    file_id: int | None = None,
    encrypted_key: str | None = None,
    encrypted_meta: str | None = None,
    ciphertext: bytes | None = None,
) -> Item:
    """Insert and bump the user's seq in the caller's transaction."""
    seq = await increment_user_seq(conn, user_id)
    async with conn.execute(
        "INSERT INTO items (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at,"
        " encrypted_key, encrypted_meta, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at, encrypted_key,
         encrypted_meta, ciphertext),
    ) as cursor:
        (item_id,) = await cursor.fetchone()
    async with conn.execute(f"{_SELECT} WHERE i.id = ?", (item_id,)) as cursor:
        return _item(await cursor.fetchone())


async def select_current_item(conn: aiosqlite.Connection, user_id: int, now: float) -> Item | None:
    async with conn.execute(
        f"{_SELECT} WHERE i.user_id = ? AND i.expires_at > ? ORDER BY i.seq DESC LIMIT 1", (user_id, now)
    ) as cursor:
        return _item(await cursor.fetchone())


async def select_item(conn: aiosqlite.Connection, user_id: int, item_id: int, now: float) -> Item | None:
    async with conn.execute(
        f"{_SELECT} WHERE i.id = ? AND i.user_id = ? AND i.expires_at > ?", (item_id, user_id, now)
    ) as cursor:
        return _item(await cursor.fetchone())


async def select_items(
    conn: aiosqlite.Connection, user_id: int, now: float, limit: int, *, query: str = "", kind: str | None = None
) -> list[Item]:
    """The user's newest `limit` live items (the history), newest first; with
    `query`, those whose text or filename holds it in any case (Unicode case
    folding: `casefold` is registered by db.py), with `kind` only texts or
    files. The history is at most HISTORY_SIZE rows, reached through the
    (user_id, seq) index, so matching them one by one costs less than
    keeping a full-text index in step with every write (docs/api.md)."""
    sql = f"SELECT * FROM ({_SELECT} WHERE i.user_id = ? AND i.expires_at > ? ORDER BY i.seq DESC LIMIT ?) AS history"
    params: list = [user_id, now, limit]
    conditions = []
    if kind is not None:
        conditions.append("kind = ?")
        params.append(kind)
    if query:
        conditions.append("instr(casefold(COALESCE(text, filename)), ?) > 0")
        params.append(query.casefold())
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    async with conn.execute(sql + " ORDER BY seq DESC", params) as cursor:
        return [_item(row) for row in await cursor.fetchall()]


def insert_text_and_trim_sync(
    conn: sqlite3.Connection, user_id: int, *, text: str, size: int, device_name: str, created_at: float,
    expires_at: float, keep: int, encrypted_key: str | None = None, encrypted_meta: str | None = None,
    ciphertext: bytes | None = None,
) -> tuple[Item, int]:
    """insert_item + delete_items_beyond for a text, as plain sqlite3 calls for
    Database.run_transaction (one thread hop). Returns the item and how many
    old items the history trim deleted. An encrypted text (docs/e2e.md) has
    text "" and its body blob in `ciphertext`."""
    ((seq,),) = conn.execute("UPDATE users SET seq = seq + 1 WHERE id = ? RETURNING seq", (user_id,)).fetchall()
    ((item_id,),) = conn.execute(
        "INSERT INTO items (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at,"
        " encrypted_key, encrypted_meta, ciphertext) VALUES (?, ?, 'text', ?, NULL, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, seq, text, size, device_name, created_at, expires_at, encrypted_key, encrypted_meta, ciphertext),
    ).fetchall()
    item = _item(conn.execute(f"{_SELECT} WHERE i.id = ?", (item_id,)).fetchone())
    trimmed = conn.execute(
        "DELETE FROM items WHERE id IN ("
        " SELECT id FROM items WHERE user_id = ? ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        (user_id, keep),
    ).rowcount
    return item, trimmed


async def delete_item(conn: aiosqlite.Connection, user_id: int, item_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM items WHERE id = ? AND user_id = ?", (item_id, user_id))
    return cursor.rowcount == 1


async def delete_items_beyond(conn: aiosqlite.Connection, user_id: int, keep: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM items WHERE id IN ("
        " SELECT id FROM items WHERE user_id = ? ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        (user_id, keep),
    )
    return cursor.rowcount
