"""Devices: a login session per browser or app, and API tokens for scripts.

Only hashes of session ids and tokens are stored: a copy of the database does
not let anyone log in.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..db import Connection
from .users import update_user_password


def hash_secret(secret: str) -> bytes:
    # The secrets are 256-bit random values, so a fast hash is enough; argon2
    # is for the low-entropy passwords people choose.
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    device_name: str
    created_at: float
    last_seen_at: float


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    name: str
    created_at: float
    last_used_at: float | None


_SESSION_COLUMNS = "id, user_id, device_name, created_at, last_seen_at"
_TOKEN_COLUMNS = "id, user_id, name, created_at, last_used_at"


def _prefixed(columns: str, table: str) -> str:
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))


def insert_session(conn: Connection, user_id: int, session_key: str, device_name: str) -> Session:
    now = time.time()
    return Session(**dict(conn.one(
        "INSERT INTO sessions (user_id, key_hash, device_name, created_at, last_seen_at)"
        f" VALUES (?, ?, ?, ?, ?) RETURNING {_SESSION_COLUMNS}",
        (user_id, hash_secret(session_key), device_name, now, now),
    )))


def _with_owner(row, record_class):
    if row is None:
        return None
    values = dict(row)
    username = values.pop("owner")
    return record_class(**values), username


def select_session_with_owner(conn: Connection, session_key: str) -> tuple[Session, str] | None:
    """The session and its owner's username. One statement, because every
    request made with a cookie looks this up (the user row always exists:
    deleting a user cascades to its sessions)."""
    return _with_owner(conn.one(
        f"SELECT {_prefixed(_SESSION_COLUMNS, 's')}, u.username AS owner"
        " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.key_hash = ?",
        (hash_secret(session_key),),
    ), Session)


def select_sessions(conn: Connection, user_id: int) -> list[Session]:
    return [Session(**dict(row)) for row in conn.all(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ? ORDER BY last_seen_at DESC", (user_id,)
    )]


def touch_session(conn: Connection, session_id: int, now: float) -> None:
    conn.run("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session_id))


def update_session_name(conn: Connection, user_id: int, session_id: int, device_name: str) -> bool:
    return conn.run(
        "UPDATE sessions SET device_name = ? WHERE id = ? AND user_id = ?", (device_name, session_id, user_id)
    ) == 1


def delete_session(conn: Connection, user_id: int, session_id: int) -> bool:
    return conn.run("DELETE FROM sessions WHERE id = ? AND user_id = ?", (session_id, user_id)) == 1


def delete_other_sessions(conn: Connection, user_id: int, keep_session_id: int | None) -> list[int]:
    """Every session of the user but `keep_session_id` (all of them for None)."""
    if keep_session_id is None:
        return conn.column("DELETE FROM sessions WHERE user_id = ? RETURNING id", (user_id,))
    return conn.column("DELETE FROM sessions WHERE user_id = ? AND id <> ? RETURNING id", (user_id, keep_session_id))


def insert_api_token(conn: Connection, user_id: int, name: str, token: str) -> ApiToken:
    return ApiToken(**dict(conn.one(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)"
        f" RETURNING {_TOKEN_COLUMNS}",
        (user_id, name, hash_secret(token), time.time()),
    )))


def select_api_token_with_owner(conn: Connection, token: str) -> tuple[ApiToken, str] | None:
    """The token and its owner's username, in one statement like sessions."""
    return _with_owner(conn.one(
        f"SELECT {_prefixed(_TOKEN_COLUMNS, 't')}, u.username AS owner"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        (hash_secret(token),),
    ), ApiToken)


def select_api_tokens(conn: Connection, user_id: int) -> list[ApiToken]:
    return [ApiToken(**dict(row)) for row in conn.all(
        f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC", (user_id,)
    )]


def touch_api_token(conn: Connection, token_id: int, now: float) -> None:
    conn.run("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))


def delete_api_token(conn: Connection, user_id: int, token_id: int) -> bool:
    return conn.run("DELETE FROM api_tokens WHERE id = ? AND user_id = ?", (token_id, user_id)) == 1


def delete_api_tokens(conn: Connection, user_id: int) -> list[int]:
    return conn.column("DELETE FROM api_tokens WHERE user_id = ? RETURNING id", (user_id,))


def end_devices_after_password_change(conn: Connection, user_id: int, keep_session_id: int | None,
                                      keep_tokens: bool) -> list[str]:
    """A new password is usually an answer to a leak: every session but the
    one that changed it ends, and every API token unless the person chose to
    keep them. Returns the device keys ended (`s3`, `t7`) for the revoke event."""
    ended = [f"s{session_id}" for session_id in delete_other_sessions(conn, user_id, keep_session_id)]
    if not keep_tokens:
        ended += [f"t{token_id}" for token_id in delete_api_tokens(conn, user_id)]
    return ended


def change_password(conn: Connection, user_id: int, password_hash: str, keep_session_id: int | None,
                    keep_tokens: bool) -> list[str]:
    """The new hash and the devices it ends, in one transaction (the profile
    page and `cloudbuffer user passwd`)."""
    update_user_password(conn, user_id, password_hash)
    return end_devices_after_password_change(conn, user_id, keep_session_id, keep_tokens)
