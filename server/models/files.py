"""Stored files and the share links that point at them.

A row, never a file's mere presence on disk, authorizes a download; every read
here filters on expires_at so expiry holds even when the sweeper is behind.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..db import Connection
from .sessions import hash_secret
from .uploads import select_reserved_bytes


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
    max_downloads: int | None = None  # None: as many as asked for until it expires
    downloads: int = 0
    password_hash: str | None = None  # argon2id; None: no password

    @property
    def protected(self) -> bool:
        return self.password_hash is not None

    @property
    def downloads_left(self) -> int | None:
        return None if self.max_downloads is None else max(self.max_downloads - self.downloads, 0)

    @property
    def exhausted(self) -> bool:
        """Its last download was taken: gone, but for continuations of it."""
        return self.downloads_left == 0


_FILE_COLUMNS = ("f.id, f.user_id, f.stored_name, f.filename, f.mime, f.size, f.created_at, f.expires_at,"
                 " f.encrypted_meta")
_SHARE_COLUMNS = ("s.id AS share_id, s.created_at AS share_created_at, s.expires_at AS share_expires_at,"
                  " s.nonce AS share_nonce, s.token_hash AS share_token_hash,"
                  " s.max_downloads AS share_max_downloads, s.downloads AS share_downloads,"
                  " s.password_hash AS share_password_hash")
# A link whose downloads are all taken is no live link (it stays, briefly, for
# continuations of its last download: take_download).
_NOT_EXHAUSTED = "(s.max_downloads IS NULL OR s.downloads < s.max_downloads)"


def _share(row) -> Share:
    data = dict(row)
    share_id = data.pop("share_id")
    created_at = data.pop("share_created_at")
    expires_at = data.pop("share_expires_at")
    nonce = data.pop("share_nonce")
    token_hash = data.pop("share_token_hash")
    max_downloads = data.pop("share_max_downloads")
    downloads = data.pop("share_downloads")
    password_hash = data.pop("share_password_hash")
    stored = StoredFile(**data)
    return Share(share_id, stored.user_id, stored.id, created_at, expires_at, stored, nonce, token_hash,
                 max_downloads, downloads, password_hash)


def _shares(rows) -> list[Share]:
    return [_share(row) for row in rows]


_SELECT_SHARES = f"SELECT {_FILE_COLUMNS}, {_SHARE_COLUMNS} FROM shares s JOIN files f ON f.id = s.file_id"


def insert_file(
    conn: Connection, user_id: int, stored_name: str, filename: str, mime: str, size: int, expires_at: float,
    encrypted_meta: str | None = None,
) -> StoredFile:
    return StoredFile(**dict(conn.one(
        "INSERT INTO files (user_id, stored_name, filename, mime, size, created_at, expires_at, encrypted_meta)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id, user_id, stored_name, filename, mime, size, created_at, expires_at, encrypted_meta",
        (user_id, stored_name, filename, mime, size, time.time(), expires_at, encrypted_meta),
    )))


def select_file(conn: Connection, user_id: int, file_id: int, now: float) -> StoredFile | None:
    row = conn.one(
        f"SELECT {_FILE_COLUMNS} FROM files f WHERE f.id = ? AND f.user_id = ? AND f.expires_at > ?",
        (file_id, user_id, now),
    )
    return None if row is None else StoredFile(**dict(row))


def select_used_bytes(conn: Connection, user_id: int, now: float) -> int:
    """The user's files, and the whole length of each unfinished resumable
    upload (it counts from its creation: models/uploads.py)."""
    stored = conn.value("SELECT COALESCE(SUM(size), 0) FROM files WHERE user_id = ? AND expires_at > ?",
                        (user_id, now))
    return stored + select_reserved_bytes(conn, user_id, now)


def delete_items_of_files_over_cap(conn: Connection, user_id: int, keep: int) -> int:
    """Take the user's oldest buffer files beyond the newest `keep` out of the
    history. Only files some item points at count: a file that also has a
    share link keeps it (delete_unreferenced_files, run next, removes only
    files no item and no share points at), and a /file/load file is no
    buffer file at all. Returns how many items went."""
    return conn.run(
        "DELETE FROM items WHERE file_id IN ("
        " SELECT f.id FROM files f WHERE f.user_id = ?"
        "  AND EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id)"
        " ORDER BY f.created_at DESC, f.id DESC LIMIT ? OFFSET ?)",
        # No engine-neutral "no limit": a user holds far fewer files than this.
        (user_id, 2**62, keep),
    )


def extend_file_expiry(conn: Connection, file_id: int, expires_at: float) -> None:
    """The file lives at least until `expires_at` (never shortened)."""
    conn.run("UPDATE files SET expires_at = ? WHERE id = ? AND expires_at < ?", (expires_at, file_id, expires_at))


def insert_share(conn: Connection, user_id: int, file_id: int, token: str, nonce: bytes, expires_at: float,
                 max_downloads: int | None = None, password_hash: str | None = None) -> Share:
    share_id = conn.value(
        "INSERT INTO shares (user_id, file_id, token_hash, nonce, created_at, expires_at, max_downloads,"
        " password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, file_id, hash_secret(token), nonce, time.time(), expires_at, max_downloads, password_hash),
    )
    return select_share(conn, user_id, share_id)


def select_share(conn: Connection, user_id: int, share_id: int) -> Share | None:
    row = conn.one(f"{_SELECT_SHARES} WHERE s.id = ? AND s.user_id = ?", (share_id, user_id))
    return None if row is None else _share(row)


def select_reusable_shares(conn: Connection, user_id: int, file_id: int, now: float) -> list[Share]:
    """The file's live links that may be handed out again, most time left
    first (rows from before migration 2 have no nonce; the caller also checks
    the derived token against the hash)."""
    return _shares(conn.all(
        f"{_SELECT_SHARES} WHERE s.user_id = ? AND s.file_id = ? AND s.expires_at > ? AND f.expires_at > ?"
        " AND s.nonce IS NOT NULL AND s.max_downloads IS NULL AND s.password_hash IS NULL"
        " ORDER BY s.expires_at DESC",
        (user_id, file_id, now, now),
    ))


def count_live_shares(conn: Connection, user_id: int, now: float) -> int:
    return conn.value(f"SELECT COUNT(*) FROM shares s WHERE s.user_id = ? AND s.expires_at > ? AND {_NOT_EXHAUSTED}",
                      (user_id, now))


def take_download(conn: Connection, share_id: int, now: float, last_grace_seconds: float) -> int | None:
    """Count one download of a limited link, in one statement that cannot
    pass its limit however many ask at once; the download's number, or None
    if none is left. The last one also shortens the link's life to
    `last_grace_seconds` (continuations of that download), after which the
    sweeper removes it, and its file if nothing else holds it."""
    return conn.value(
        "UPDATE shares SET downloads = downloads + 1,"
        " expires_at = CASE WHEN downloads + 1 >= max_downloads AND expires_at > ? THEN ? ELSE expires_at END"
        " WHERE id = ? AND max_downloads IS NOT NULL AND downloads < max_downloads AND expires_at > ?"
        " RETURNING downloads",
        (now + last_grace_seconds, now + last_grace_seconds, share_id, now),
    )


def select_share_by_token(conn: Connection, token: str, now: float) -> Share | None:
    row = conn.one(
        f"{_SELECT_SHARES} WHERE s.token_hash = ? AND s.expires_at > ? AND f.expires_at > ?",
        (hash_secret(token), now, now),
    )
    return None if row is None else _share(row)


def select_shares(conn: Connection, user_id: int, now: float) -> list[Share]:
    return _shares(conn.all(
        f"{_SELECT_SHARES} WHERE s.user_id = ? AND s.expires_at > ? AND f.expires_at > ? AND {_NOT_EXHAUSTED}"
        " ORDER BY s.created_at DESC",
        (user_id, now, now),
    ))


def delete_share(conn: Connection, user_id: int, share_id: int) -> bool:
    return conn.run("DELETE FROM shares WHERE id = ? AND user_id = ?", (share_id, user_id)) == 1


def delete_expired_batch(conn: Connection, now: float, limit: int) -> tuple[int, list[str]]:
    """One sweeper batch: expired items and shares, then files that are
    expired or no longer referenced. Returns (rows deleted, stored names)."""
    deleted = 0
    for table in ("items", "shares"):
        deleted += conn.run(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE expires_at <= ? LIMIT ?)", (now, limit)
        )
    names = conn.column(
        "DELETE FROM files WHERE id IN ("
        " SELECT f.id FROM files f WHERE f.expires_at <= ?"
        "  OR (NOT EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id)"
        "      AND NOT EXISTS (SELECT 1 FROM shares s WHERE s.file_id = f.id))"
        " LIMIT ?) RETURNING stored_name",
        (now, limit),
    )
    return deleted + len(names), names


def select_stored_names(conn: Connection, stored_names: list[str]) -> set[str]:
    """Which of these names have a row (to tell orphan files from live ones)."""
    found: set[str] = set()
    for start in range(0, len(stored_names), 500):
        chunk = stored_names[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.column(f"SELECT stored_name FROM files WHERE stored_name IN ({marks})", chunk))
    return found


def delete_unreferenced_files(conn: Connection, user_id: int) -> list[str]:
    """Files no item or share points at any more (after a history trim or a
    delete); returns the stored names to unlink after commit."""
    return conn.column(
        "DELETE FROM files WHERE user_id = ?"
        " AND NOT EXISTS (SELECT 1 FROM items i WHERE i.file_id = files.id)"
        " AND NOT EXISTS (SELECT 1 FROM shares s WHERE s.file_id = files.id)"
        " RETURNING stored_name",
        (user_id,),
    )


def select_user_stored_names(conn: Connection, user_id: int) -> list[str]:
    return conn.column("SELECT stored_name FROM files WHERE user_id = ?", (user_id,))


def select_file_names_created_before(conn: Connection, before: float, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, stored_name) of files rows older than `before`, by id, for the
    sweeper's check that every row still has its file."""
    return [(row["id"], row["stored_name"]) for row in conn.all(
        "SELECT id, stored_name FROM files WHERE created_at < ? AND id > ? ORDER BY id LIMIT ?",
        (before, after_id, limit),
    )]


def delete_files_by_id(conn: Connection, file_ids: list[int]) -> int:
    """Delete these files rows; their items and shares go too (ON DELETE CASCADE)."""
    if not file_ids:
        return 0
    marks = ",".join("?" * len(file_ids))
    return conn.run(f"DELETE FROM files WHERE id IN ({marks})", file_ids)
