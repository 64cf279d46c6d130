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
    multipart_id: str | None = None  # on object storage only (server/s3_partials.py)
    stored_name: str | None = None
    parts: str | None = None  # JSON [[number, etag], …] of the counted parts

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


_COLUMNS = ("id, user_id, public_id, length, upload_offset AS \"offset\", filename, mime, target, share_seconds,"
            " share_max_downloads, share_password_hash, metadata, encrypted_key, encrypted_meta, created_at, expires_at, finished_at, item_id, share_id,"
            " multipart_id, stored_name, parts")


def _upload(row) -> ResumableUpload | None:
    return None if row is None else ResumableUpload(**dict(row))


def insert_upload(conn: Connection, user_id: int, public_id: str, length: int, filename: str, mime: str,
                  target: str, share_seconds: int | None, share_max_downloads: int | None,
                  share_password_hash: str | None, metadata: str,
                  encrypted_key: str | None,
                  encrypted_meta: str | None, now: float, expires_at: float,
                  multipart_id: str | None = None, stored_name: str | None = None) -> ResumableUpload:
    return _upload(conn.one(
        "INSERT INTO uploads (user_id, public_id, length, filename, mime, target, share_seconds,"
        " share_max_downloads, share_password_hash, metadata, encrypted_key, encrypted_meta, created_at, expires_at,"
        f" multipart_id, stored_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (user_id, public_id, length, filename, mime, target, share_seconds, share_max_downloads,
         share_password_hash, metadata,
         encrypted_key, encrypted_meta, now, expires_at, multipart_id, stored_name),
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


def update_offset(conn: Connection, upload_id: int, old_offset: int, new_offset: int,
                  lease_token: str | None = None, parts: str | None = None) -> bool:
    """Move the committed offset on, if it is still where this PATCH began
    (the partial file's lock or the lease already keeps PATCHes apart; this
    keeps a terminated or finished upload from moving) and, with a lease,
    if this PATCH still holds it (one that lost it to expiry records nothing)."""
    if lease_token is None:
        return conn.run(
            "UPDATE uploads SET upload_offset = ? WHERE id = ? AND upload_offset = ? AND finished_at IS NULL",
            (new_offset, upload_id, old_offset),
        ) == 1
    return conn.run(
        "UPDATE uploads SET upload_offset = ?, parts = ? WHERE id = ? AND upload_offset = ? AND finished_at IS NULL"
        " AND lease_token = ?",
        (new_offset, parts, upload_id, old_offset, lease_token),
    ) == 1


# --- the lease: one PATCH at a time across hosts (server/s3_partials.py) ----------------------

def take_lease(conn: Connection, public_id: str, token: str, now: float, until: float) -> bool:
    """The upload's lease for `token` if it is free or expired (one UPDATE,
    so two hosts racing for it cannot both win)."""
    return conn.run(
        "UPDATE uploads SET lease_token = ?, lease_until = ? WHERE public_id = ? AND finished_at IS NULL"
        " AND (lease_until IS NULL OR lease_until <= ?)",
        (token, until, public_id, now),
    ) == 1


def refresh_lease(conn: Connection, public_id: str, token: str, until: float) -> bool:
    return conn.run("UPDATE uploads SET lease_until = ? WHERE public_id = ? AND lease_token = ?",
                    (until, public_id, token)) == 1


def release_lease(conn: Connection, public_id: str, token: str) -> None:
    conn.run("UPDATE uploads SET lease_token = NULL, lease_until = NULL WHERE public_id = ? AND lease_token = ?",
             (public_id, token))


def select_partial_state(conn: Connection, public_id: str) -> tuple[bool, bool] | None:
    """(finished, leased now) of an upload, None without a row: why a lease was not taken."""
    row = conn.one("SELECT finished_at, lease_until FROM uploads WHERE public_id = ?", (public_id,))
    return None if row is None else (row["finished_at"] is not None, row["lease_until"] is not None)


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


@dataclass(frozen=True)
class PartialRef:
    """What a partial store needs to remove an upload's bytes once its row is gone."""
    public_id: str
    finished: bool
    multipart_id: str | None
    stored_name: str | None


def delete_expired_batch(conn: Connection, now: float, limit: int) -> list[PartialRef]:
    """Expired uploads, up to `limit`: each deleted row's partial, so the
    caller removes the bytes of unfinished ones."""
    return [PartialRef(row["public_id"], row["finished_at"] is not None, row["multipart_id"], row["stored_name"])
            for row in conn.all(
                "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads WHERE expires_at <= ? LIMIT ?)"
                " RETURNING public_id, finished_at, multipart_id, stored_name",
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


def select_unfinished_multipart_ids(conn: Connection, multipart_ids: list[str]) -> set[str]:
    """Which of these S3 multipart uploads an unfinished row owns."""
    found: set[str] = set()
    for start in range(0, len(multipart_ids), 500):
        chunk = multipart_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.column(
            f"SELECT multipart_id FROM uploads WHERE finished_at IS NULL AND multipart_id IN ({marks})", chunk))
    return found


def select_unfinished_offsets(conn: Connection, public_ids: list[str]) -> dict[str, int]:
    """The committed offset of each of these ids that is an unfinished upload."""
    found: dict[str, int] = {}
    for start in range(0, len(public_ids), 500):
        chunk = public_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.all(f"SELECT public_id, upload_offset FROM uploads WHERE finished_at IS NULL"
                            f" AND public_id IN ({marks})", chunk):
            found[row["public_id"]] = row["upload_offset"]
    return found


def select_unfinished_stored_names(conn: Connection, names: list[str]) -> set[str]:
    """Which of these stored names unfinished uploads will complete into
    (an object there whose finishing transaction failed waits for a retry:
    the file sweep must not take it for an orphan)."""
    found: set[str] = set()
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.column(
            f"SELECT stored_name FROM uploads WHERE finished_at IS NULL AND stored_name IN ({marks})", chunk))
    return found
