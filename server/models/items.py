"""Buffer items: a user's history of text and files; the newest is the buffer."""
from __future__ import annotations

from dataclasses import dataclass

from ..db import Connection
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


def _item(row) -> Item | None:
    return None if row is None else Item(**dict(row))


def insert_item(
    conn: Connection,
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
    """Insert and bump the user's seq in the caller's transaction. An
    encrypted text (docs/e2e.md) has text "" and its body blob in
    `ciphertext`."""
    seq = increment_user_seq(conn, user_id)
    item_id = conn.value(
        "INSERT INTO items (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at,"
        " encrypted_key, encrypted_meta, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, seq, kind, text, file_id, size, device_name, created_at, expires_at, encrypted_key,
         encrypted_meta, ciphertext),
    )
    return _item(conn.one(f"{_SELECT} WHERE i.id = ?", (item_id,)))


def select_current_item(conn: Connection, user_id: int, now: float) -> Item | None:
    return _item(conn.one(
        f"{_SELECT} WHERE i.user_id = ? AND i.expires_at > ? ORDER BY i.seq DESC LIMIT 1", (user_id, now)
    ))


def select_item(conn: Connection, user_id: int, item_id: int, now: float) -> Item | None:
    return _item(conn.one(f"{_SELECT} WHERE i.id = ? AND i.user_id = ? AND i.expires_at > ?", (item_id, user_id, now)))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def select_items(
    conn: Connection, user_id: int, now: float, limit: int, *, query: str = "", kind: str | None = None
) -> list[Item]:
    """The user's newest `limit` live items (the history), newest first; with
    `query`, those whose text or filename holds it in any case (Unicode case
    folding: the dialect provides `casefold`), with `kind` only texts or
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
        conditions.append("casefold(COALESCE(text, filename)) LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(query.casefold()))
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return [_item(row) for row in conn.all(sql + " ORDER BY seq DESC", params)]


def delete_item(conn: Connection, user_id: int, item_id: int) -> bool:
    return conn.run("DELETE FROM items WHERE id = ? AND user_id = ?", (item_id, user_id)) == 1


def delete_items_beyond(conn: Connection, user_id: int, keep: int) -> int:
    """Trim the history to the newest `keep` items: those at or below the
    seq of the (keep+1)-th newest go (none if there are not that many).
    Returns how many went."""
    return conn.run(
        "DELETE FROM items WHERE user_id = ? AND seq <= ("
        " SELECT seq FROM items WHERE user_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (user_id, user_id, keep),
    )
