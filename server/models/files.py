"""Stored files and the share links that point at them.

A row, never a file's mere presence on disk, authorizes a download; every read
here filters on expires_at so expiry holds even when the sweeper is behind.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import aiosqlite

from .sessions import hash_secret


@dataclass(frozen=True)
class StoredFile:
    id: int
    user_id: int
    stored_name: str
    filename: str
    mime: str
    size: int
    created_at: float
    expires_at: float
    encrypted_meta: str | None = None  # b64u meta blob of an end-to-end encrypted file (docs/e2e.md)


@dataclass(frozen=True)
class Share:
    id: int
    user_id: int
    file_id: int
    created_at: float
    expires_at: float
    file: StoredFile
    nonce: bytes | None = None  # what the token is derived from (share_links.derive_token)
    token_hash: bytes | None = None


_FILE_COLUMNS = ("f.id, f.user_id, f.stored_name, f.filename, f.mime, f.size, f.created_at, f.expires_at,"
                 " f.encrypted_meta")
_SHARE_COLUMNS = ("s.id AS share_id, s.created_at AS share_created_at, s.expires_at AS share_expires_at,"
                  " s.nonce AS share_nonce, s.token_hash AS share_token_hash")


def _share(row: aiosqlite.Row) -> Share:
    data = dict(row)
    share_id = data.pop("share_id")
    created_at = data.pop("share_created_at")
    expires_at = data.pop("share_expires_at")
    nonce = data.pop("share_nonce")
    token_hash = data.pop("share_token_hash")
    stored = StoredFile(**data)
    return Share(share_id, stored.user_id, stored.id, created_at, expires_at, stored, nonce, token_hash)


async def insert_file(
    conn: aiosqlite.Connection, user_id: int, stored_name: str, filename: str, mime: str, size: int, expires_at: float,
    encrypted_meta: str | None = None,
) -> StoredFile:
    async with conn.execute(
        "INSERT INTO files (user_id, stored_name, filename, mime, size, created_at, expires_at, encrypted_meta)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        (user_id, stored_name, filename, mime, size, time.time(), expires_at, encrypted_meta),
    ) as cursor:
        return StoredFile(**dict(await cursor.fetchone()))


async def select_file(conn: aiosqlite.Connection, user_id: int, file_id: int, now: float) -> StoredFile | None:
    async with conn.execute(
        f"SELECT {_FILE_COLUMNS} FROM files f WHERE f.id = ? AND f.user_id = ? AND f.expires_at > ?",
        (file_id, user_id, now),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else StoredFile(**dict(row))


async def select_used_bytes(conn: aiosqlite.Connection, user_id: int, now: float) -> int:
    async with conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM files WHERE user_id = ? AND expires_at > ?", (user_id, now)
    ) as cursor:
        (used,) = await cursor.fetchone()
    return used


async def delete_items_of_files_over_cap(conn: aiosqlite.Connection, user_id: int, keep: int) -> int:
    """Take the user's oldest buffer files beyond the newest `keep` out of the
    history. Only files some item points at count: a file that also has a
    share link keeps it (delete_unreferenced_files, run next, removes only
    files no item and no share points at), and a /file/load file is no
    buffer file at all. Returns how many items went."""
    cursor = await conn.execute(
        "DELETE FROM items WHERE file_id IN ("
        " SELECT f.id FROM files f WHERE f.user_id = ?"
        "  AND EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id)"
        " ORDER BY f.created_at DESC, f.id DESC LIMIT -1 OFFSET ?)",
        (user_id, keep),
    )
    return cursor.rowcount


async def extend_file_expiry(conn: aiosqlite.Connection, file_id: int, expires_at: float) -> None:
    await conn.execute("UPDATE files SET expires_at = MAX(expires_at, ?) WHERE id = ?", (expires_at, file_id))


async def insert_share(
    conn: aiosqlite.Connection, user_id: int, file_id: int, token: str, nonce: bytes, expires_at: float
) -> Share:
    async with conn.execute(
        "INSERT INTO shares (user_id, file_id, token_hash, nonce, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, file_id, hash_secret(token), nonce, time.time(), expires_at),
    ) as cursor:
        (share_id,) = await cursor.fetchone()
    return await select_share(conn, user_id, share_id)


async def select_share(conn: aiosqlite.Connection, user_id: int, share_id: int) -> Share | None:
    async with conn.execute(
        f"SELECT {_FILE_COLUMNS}, {_SHARE_COLUMNS} FROM shares s JOIN files f ON f.id = s.file_id"
        " WHERE s.id = ? AND s.user_id = ?",
        (share_id, user_id),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _share(row)


async def select_reusable_shares(conn: aiosqlite.Connection, user_id: int, file_id: int, now: float) -> list[Share]:
    """The file's live links that may be handed out again, most time left
    first (rows from before migration 2 have no nonce; the caller also checks
    the derived token against the hash)."""
    async with conn.execute(
        f"SELECT {_FILE_COLUMNS}, {_SHARE_COLUMNS} FROM shares s JOIN files f ON f.id = s.file_id"
        " WHERE s.user_id = ? AND s.file_id = ? AND s.expires_at > ? AND f.expires_at > ? AND s.nonce IS NOT NULL"
        " ORDER BY s.expires_at DESC",
        (user_id, file_id, now, now),
    ) as cursor:
        return [_share(row) for row in await cursor.fetchall()]


async def count_live_shares(conn: aiosqlite.Connection, user_id: int, now: float) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM shares WHERE user_id = ? AND expires_at > ?", (user_id, now)
    ) as cursor:
        (count,) = await cursor.fetchone()
    return count


async def select_share_by_token(conn: aiosqlite.Connection, token: str, now: float) -> Share | None:
    async with conn.execute(
        f"SELECT {_FILE_COLUMNS}, {_SHARE_COLUMNS} FROM shares s JOIN files f ON f.id = s.file_id"
        " WHERE s.token_hash = ? AND s.expires_at > ? AND f.expires_at > ?",
        (hash_secret(token), now, now),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _share(row)


async def select_shares(conn: aiosqlite.Connection, user_id: int, now: float) -> list[Share]:
    async with conn.execute(
        f"SELECT {_FILE_COLUMNS}, {_SHARE_COLUMNS} FROM shares s JOIN files f ON f.id = s.file_id"
        " WHERE s.user_id = ? AND s.expires_at > ? AND f.expires_at > ? ORDER BY s.created_at DESC",
        (user_id, now, now),
    ) as cursor:
        return [_share(row) for row in await cursor.fetchall()]


async def delete_share(conn: aiosqlite.Connection, user_id: int, share_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM shares WHERE id = ? AND user_id = ?", (share_id, user_id))
    return cursor.rowcount == 1


async def delete_expired_batch(conn: aiosqlite.Connection, now: float, limit: int) -> tuple[int, list[str]]:
    """One sweeper batch: expired items and shares, then files that are
    expired or no longer referenced. Returns (rows deleted, stored names)."""
    deleted = 0
    for table in ("items", "shares"):
        cursor = await conn.execute(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE expires_at <= ? LIMIT ?)", (now, limit)
        )
        deleted += cursor.rowcount
    async with conn.execute(
        "DELETE FROM files WHERE id IN ("
        " SELECT f.id FROM files f WHERE f.expires_at <= ?"
        "  OR (NOT EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id)"
        "      AND NOT EXISTS (SELECT 1 FROM shares s WHERE s.file_id = f.id))"
        " LIMIT ?) RETURNING stored_name",
        (now, limit),
    ) as cursor:
        names = [row[0] for row in await cursor.fetchall()]
    return deleted + len(names), names


async def select_stored_names(conn: aiosqlite.Connection, stored_names: list[str]) -> set[str]:
    """Which of these names have a row (to tell orphan files from live ones)."""
    found: set[str] = set()
    for start in range(0, len(stored_names), 500):
        chunk = stored_names[start : start + 500]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(f"SELECT stored_name FROM files WHERE stored_name IN ({marks})", chunk) as cursor:
            found.update(row[0] for row in await cursor.fetchall())
    return found


async def delete_unreferenced_files(conn: aiosqlite.Connection, user_id: int) -> list[str]:
    """Files no item or share points at any more (after a history trim or a
    delete); returns the stored names to unlink after commit."""
    async with conn.execute(_DELETE_UNREFERENCED, (user_id,)) as cursor:
        return [row[0] for row in await cursor.fetchall()]


_DELETE_UNREFERENCED = (
    "DELETE FROM files WHERE user_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM items i WHERE i.file_id = files.id)"
    " AND NOT EXISTS (SELECT 1 FROM shares s WHERE s.file_id = files.id)"
    " RETURNING stored_name"
)


def delete_unreferenced_files_sync(conn: sqlite3.Connection, user_id: int) -> list[str]:
    """delete_unreferenced_files for Database.run_transaction."""
    return [row[0] for row in conn.execute(_DELETE_UNREFERENCED, (user_id,)).fetchall()]


async def select_user_stored_names(conn: aiosqlite.Connection, user_id: int) -> list[str]:
    async with conn.execute("SELECT stored_name FROM files WHERE user_id = ?", (user_id,)) as cursor:
        return [row[0] for row in await cursor.fetchall()]


async def select_file_names_created_before(
    conn: aiosqlite.Connection, before: float, after_id: int, limit: int
) -> list[tuple[int, str]]:
    """(id, stored_name) of files rows older than `before`, by id, for the
    sweeper's check that every row still has its file."""
    async with conn.execute(
        "SELECT id, stored_name FROM files WHERE created_at < ? AND id > ? ORDER BY id LIMIT ?",
        (before, after_id, limit),
    ) as cursor:
        return [(row[0], row[1]) for row in await cursor.fetchall()]


async def delete_files_by_id(conn: aiosqlite.Connection, file_ids: list[int]) -> int:
    """Delete these files rows; their items and shares go too (ON DELETE CASCADE)."""
    if not file_ids:
        return 0
    marks = ",".join("?" * len(file_ids))
    cursor = await conn.execute(f"DELETE FROM files WHERE id IN ({marks})", file_ids)
    return cursor.rowcount
