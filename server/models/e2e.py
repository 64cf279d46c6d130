"""An account's end-to-end encryption state (docs/e2e.md): its epoch, the
recovery key pair (public key, and the private key sealed under the
person's recovery key), the devices' public keys and the wrapped account
keys per recipient. Nothing here can decrypt anything.

A recipient is `session:<id>`, `token:<id>` or `recovery`. A device row whose
session or token is gone (SET NULL, migration 4) is a revoked device: its
mere presence makes rotation_needed true until e2e.settle_revoked or a
rotation deletes it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..db import Connection


@dataclass(frozen=True)
class E2EAccount:
    user_id: int
    epoch: int
    rotation_needed: bool
    recovery_public_key: str
    recovery_sealed_key: str
    enabled_at: float


@dataclass(frozen=True)
class E2EDevice:
    device: str  # the recipient name: session:<id> or token:<id>
    name: str
    public_key: str
    attest: str
    created_at: float


@dataclass(frozen=True)
class Wrap:
    epoch: int
    recipient: str
    blob: str


def recipient_ids(recipient: str) -> tuple[int | None, int | None]:
    """(session_id, token_id) of a recipient name (both None for recovery)."""
    kind, _, number = recipient.partition(":")
    if kind == "session":
        return int(number), None
    if kind == "token":
        return None, int(number)
    return None, None


# A CASE, not `rotation_needed OR EXISTS …`: the column is an integer, and
# PostgreSQL has no OR of an integer and a boolean.
_ACCOUNT = ("SELECT a.user_id, a.epoch, CASE WHEN a.rotation_needed <> 0 OR EXISTS (SELECT 1 FROM e2e_devices d"
            " WHERE d.user_id = a.user_id AND d.session_id IS NULL AND d.token_id IS NULL) THEN 1 ELSE 0 END"
            " AS rotation_needed,"
            " a.recovery_public_key, a.recovery_sealed_key, a.enabled_at FROM e2e_accounts a WHERE a.user_id = ?")


def _account(row) -> E2EAccount | None:
    if row is None:
        return None
    values = dict(row)
    values["rotation_needed"] = bool(values["rotation_needed"])
    return E2EAccount(**values)


def select_account(conn: Connection, user_id: int) -> E2EAccount | None:
    return _account(conn.one(_ACCOUNT, (user_id,)))


def select_epoch(conn: Connection, user_id: int) -> int | None:
    """The account's epoch, or None when it is not encrypted."""
    return conn.value("SELECT epoch FROM e2e_accounts WHERE user_id = ?", (user_id,))


def insert_account(conn: Connection, user_id: int, recovery_public_key: str, recovery_sealed_key: str) -> bool:
    """Epoch 1; False when the account is encrypted already."""
    return conn.one(
        "INSERT INTO e2e_accounts (user_id, epoch, rotation_needed, recovery_public_key, recovery_sealed_key,"
        " enabled_at) VALUES (?, 1, 0, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
        (user_id, recovery_public_key, recovery_sealed_key, time.time()),
    ) is not None


def delete_history(conn: Connection, user_id: int) -> list[str]:
    """Every item, share link and file of the user (the plaintext history an
    account that turns encryption on must not keep). Returns the stored
    names to unlink after commit."""
    conn.run("DELETE FROM items WHERE user_id = ?", (user_id,))
    conn.run("DELETE FROM shares WHERE user_id = ?", (user_id,))
    return conn.column("DELETE FROM files WHERE user_id = ? RETURNING stored_name", (user_id,))


def select_devices(conn: Connection, user_id: int) -> list[E2EDevice]:
    """The live devices' public keys, oldest first."""
    return [E2EDevice(**dict(row)) for row in conn.all(
        "SELECT CASE WHEN d.session_id IS NOT NULL THEN 'session:' || d.session_id ELSE 'token:' || d.token_id END"
        " AS device, COALESCE(s.device_name, t.name) AS name, d.public_key, d.attest, d.created_at"
        " FROM e2e_devices d LEFT JOIN sessions s ON s.id = d.session_id LEFT JOIN api_tokens t ON t.id = d.token_id"
        " WHERE d.user_id = ? AND (d.session_id IS NOT NULL OR d.token_id IS NOT NULL) ORDER BY d.created_at, d.id",
        (user_id,),
    )]


def upsert_device(conn: Connection, user_id: int, device: str, public_key: str, attest: str) -> None:
    """A device registers (or replaces) its one public key."""
    session_id, token_id = recipient_ids(device)
    column = "session_id" if session_id is not None else "token_id"
    conn.run(f"DELETE FROM e2e_devices WHERE {column} = ?", (session_id or token_id,))
    conn.run(
        "INSERT INTO e2e_devices (user_id, session_id, token_id, public_key, attest, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, session_id, token_id, public_key, attest, time.time()),
    )


def select_wraps_for(conn: Connection, user_id: int, recipient: str) -> list[Wrap]:
    return [Wrap(**dict(row)) for row in conn.all(
        "SELECT epoch, recipient, blob FROM e2e_wraps WHERE user_id = ? AND recipient = ? ORDER BY epoch",
        (user_id, recipient),
    )]


def upsert_wrap(conn: Connection, user_id: int, epoch: int, recipient: str, blob: str) -> None:
    session_id, token_id = recipient_ids(recipient)
    conn.run(
        "INSERT INTO e2e_wraps (user_id, epoch, recipient, session_id, token_id, blob, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, recipient, epoch) DO UPDATE SET blob = excluded.blob, created_at = excluded.created_at",
        (user_id, epoch, recipient, session_id, token_id, blob, time.time()),
    )


def advance_epoch(conn: Connection, user_id: int, current: int) -> bool:
    """current → current + 1, only if `current` is still the epoch (the
    optimistic check of a rotation); the revoked devices' marks go, and so
    does rotation_needed."""
    if conn.run(
        "UPDATE e2e_accounts SET epoch = epoch + 1, rotation_needed = 0 WHERE user_id = ? AND epoch = ?",
        (user_id, current),
    ) != 1:
        return False
    _delete_revoked_devices(conn, user_id)
    return True


def _delete_revoked_devices(conn: Connection, user_id: int) -> None:
    conn.run("DELETE FROM e2e_devices WHERE user_id = ? AND session_id IS NULL AND token_id IS NULL",
             (user_id,))


def settle_revoked(conn: Connection, user_id: int) -> E2EAccount | None:
    """After a device of the user was revoked: the flag is set for good and
    the revoked device's public key deleted. None if the account is not
    encrypted (nothing to do)."""
    if conn.run("UPDATE e2e_accounts SET rotation_needed = 1 WHERE user_id = ?", (user_id,)) != 1:
        return None
    _delete_revoked_devices(conn, user_id)
    return select_account(conn, user_id)


def insert_epoch_proof(conn: Connection, user_id: int, epoch: int, proof: str) -> None:
    """The rotating device's proof that the key of `epoch` was made by a
    holder of the key before it (docs/e2e.md); devices check it."""
    conn.run("INSERT INTO e2e_epochs (user_id, epoch, proof, created_at) VALUES (?, ?, ?, ?)",
             (user_id, epoch, proof, time.time()))


def select_epoch_proofs(conn: Connection, user_id: int) -> list[tuple[int, str]]:
    return [(row[0], row[1]) for row in conn.all(
        "SELECT epoch, proof FROM e2e_epochs WHERE user_id = ? ORDER BY epoch", (user_id,)
    )]
