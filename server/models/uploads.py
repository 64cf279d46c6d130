"""Resumable uploads (tus): one row per upload, its committed offset and
what it became. The partial bytes are a file of server/partials.py; the row,
not that file, says how many of them count.

An unfinished upload reserves its whole declared length of the quota
(select_reserved_bytes, added to files.select_used_bytes), so an upload
that was allowed to start can always finish.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..db import Connection


@dataclass(frozen=True)
class ResumableUpload:
    id: int
    user_id: int
    public_id: str
    length: int
    offset: int
    filename: str
    mime: str
    target: str
    share_seconds: int | None
    share_max_downloads: int | None
    share_password_hash: str | None
    metadata: str
    encrypted_key: str | None
    encrypted_meta: str | None
    created_at: float
    expires_at: float
    finished_at: float | None
    item_id: int | None
    share_id: int | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


_COLUMNS = ("id, user_id, public_id, length, upload_offset AS \"offset\", filename, mime, target, share_seconds,"
            " share_max_downloads, share_password_hash, metadata, encrypted_key, encrypted_meta, created_at, expires_at, finished_at, item_id, share_id")


def _upload(row) -> ResumableUpload | None:
    return None if row is None else ResumableUpload(**dict(row))


def insert_upload(conn: Connection, user_id: int, public_id: str, length: int, filename: str, mime: str,
                  target: str, share_seconds: int | None, share_max_downloads: int | None,
                  share_password_hash: str | None, metadata: str,
                  encrypted_key: str | None,
                  encrypted_meta: str | None, now: float, expires_at: float) -> ResumableUpload:
    return _upload(conn.one(
        "INSERT INTO uploads (user_id, public_id, length, filename, mime, target, share_seconds,"
        " share_max_downloads, share_password_hash, metadata, encrypted_key, encrypted_meta, created_at, expires_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (user_id, public_id, length, filename, mime, target, share_seconds, share_max_downloads,
         share_password_hash, metadata,
         encrypted_key, encrypted_meta, now, expires_at),
    ))


def select_upload(conn: Connection, user_id: int, public_id: str, now: float) -> ResumableUpload | None:
    """The user's upload, unless it has expired (another user's is no upload)."""
    return _upload(conn.one(
        f"SELECT {_COLUMNS} FROM uploads WHERE public_id = ? AND user_id = ? AND expires_at > ?",
        (public_id, user_id, now),
    ))


def select_reserved_bytes(conn: Connection, user_id: int, now: float) -> int:
    return conn.value(
        "SELECT COALESCE(SUM(length), 0) FROM uploads WHERE user_id = ? AND finished_at IS NULL AND expires_at > ?",
        (user_id, now),
    )


def update_offset(conn: Connection, upload_id: int, old_offset: int, new_offset: int) -> bool:
    """Move the committed offset on, if it is still where this PATCH began
    (the partial file's lock already keeps PATCHes apart; this keeps a
    terminated or finished upload from moving)."""
    return conn.run(
        "UPDATE uploads SET upload_offset = ? WHERE id = ? AND upload_offset = ? AND finished_at IS NULL",
        (new_offset, upload_id, old_offset),
    ) == 1


def mark_finished(conn: Connection, upload_id: int, now: float) -> bool:
    """Stop reserving the quota (the file about to be inserted counts instead)."""
    return conn.run(
        "UPDATE uploads SET finished_at = ? WHERE id = ? AND finished_at IS NULL AND upload_offset = length",
        (now, upload_id),
    ) == 1


def set_result(conn: Connection, upload_id: int, item_id: int | None, share_id: int | None) -> None:
    conn.run("UPDATE uploads SET item_id = ?, share_id = ? WHERE id = ?", (item_id, share_id, upload_id))


def delete_upload(conn: Connection, user_id: int, upload_id: int) -> bool:
    return conn.run("DELETE FROM uploads WHERE id = ? AND user_id = ?", (upload_id, user_id)) == 1


def delete_expired_batch(conn: Connection, now: float, limit: int) -> list[tuple[str, bool]]:
    """Expired uploads, up to `limit`: (public_id, finished) of each deleted
    row, so the caller removes the partial files of unfinished ones."""
    return [(row["public_id"], row["finished_at"] is not None) for row in conn.all(
        "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads WHERE expires_at <= ? LIMIT ?)"
        " RETURNING public_id, finished_at",
        (now, limit),
    )]


def select_unfinished_ids(conn: Connection, public_ids: list[str]) -> set[str]:
    """Which of these ids are unfinished uploads with a row (the rest of the
    partial files on disk are leftovers)."""
    found: set[str] = set()
    for start in range(0, len(public_ids), 500):
        chunk = public_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.column(
            f"SELECT public_id FROM uploads WHERE finished_at IS NULL AND public_id IN ({marks})", chunk))
    return found
