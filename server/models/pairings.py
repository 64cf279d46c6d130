"""Pairings: one "Add a device" exchange, from the code shown on a logged-in
device to the new device's session. Rows are found by digests of their
secrets (server/pairing.py makes them) and never outlive expires_at."""
from __future__ import annotations

from dataclasses import dataclass

from ..db import Connection


@dataclass(frozen=True)
class Pairing:
    id: int
    user_id: int | None  # None: a new device's request (flow B) no account has taken yet
    session_id: int | None
    status: str
    device_name: str | None
    request_payload: str | None  # the new device's (its ephemeral public key)
    approval_payload: str | None
    created_at: float
    expires_at: float
    direction: str = "offer"  # offer: the logged-in device shows the code; request: the new device does
    offer_payload: str | None = None  # the logged-in device's ephemeral public key
    token_id: int | None = None  # a terminal's API token took the request (flow B) instead of a session


_COLUMNS = ("id, user_id, session_id, status, device_name, request_payload, approval_payload,"
            " created_at, expires_at, direction, offer_payload, token_id")


def _pairing(row) -> Pairing | None:
    return None if row is None else Pairing(**dict(row))


def delete_expired_pairings(conn: Connection, now: float) -> None:
    conn.run("DELETE FROM pairings WHERE expires_at <= ?", (now,))


def delete_open_pairings_of_session(conn: Connection, session_id: int) -> None:
    """A device shows one code at a time: a new one replaces the last."""
    conn.run("DELETE FROM pairings WHERE session_id = ? AND status = 'open'", (session_id,))


def insert_pairing(conn: Connection, user_id: int, session_id: int, code_digest: bytes, now: float,
                   expires_at: float, offer_payload: str | None = None) -> Pairing | None:
    """None when a live pairing has the same code (a code derived from a
    payload can collide: the device makes a new key)."""
    return _pairing(conn.one(
        "INSERT INTO pairings (user_id, session_id, code_digest, status, offer_payload, created_at, expires_at)"
        f" VALUES (?, ?, ?, 'open', ?, ?, ?) ON CONFLICT (code_digest) DO NOTHING RETURNING {_COLUMNS}",
        (user_id, session_id, code_digest, offer_payload, now, expires_at),
    ))


def insert_request(conn: Connection, code_digest: bytes, claim_digest: bytes, device_name: str, payload: str,
                   now: float, expires_at: float) -> Pairing | None:
    """A new device's request to join (flow B): no account yet, its claim
    from the start. None on a code collision (the claim is a digest of 32
    random bytes: it does not collide)."""
    return _pairing(conn.one(
        "INSERT INTO pairings (direction, code_digest, claim_digest, status, device_name, request_payload,"
        " created_at, expires_at) VALUES ('request', ?, ?, 'open', ?, ?, ?, ?)"
        f" ON CONFLICT (code_digest) DO NOTHING RETURNING {_COLUMNS}",
        (code_digest, claim_digest, device_name, payload, now, expires_at),
    ))


def select_open_pairing_by_code(conn: Connection, code_digest: bytes, now: float) -> Pairing | None:
    return _pairing(conn.one(
        f"SELECT {_COLUMNS} FROM pairings WHERE code_digest = ? AND status = 'open' AND expires_at > ?",
        (code_digest, now),
    ))


def take_request(conn: Connection, code_digest: bytes, user_id: int, session_id: int | None, token_id: int | None,
                 payload: str, now: float, expires_at: float) -> Pairing | None:
    """A logged-in device (a session, or a terminal's API token) takes a new
    device's open request, once."""
    return _pairing(conn.one(
        "UPDATE pairings SET user_id = ?, session_id = ?, token_id = ?, status = 'claimed', offer_payload = ?,"
        " expires_at = ? WHERE code_digest = ? AND direction = 'request' AND status = 'open' AND expires_at > ?"
        f" RETURNING {_COLUMNS}",
        (user_id, session_id, token_id, payload, expires_at, code_digest, now),
    ))


def claim_pairing(conn: Connection, code_digest: bytes, claim_digest: bytes, device_name: str,
                  payload: str | None, now: float, expires_at: float) -> Pairing | None:
    """Take an open, live code: it can be claimed once."""
    return _pairing(conn.one(
        "UPDATE pairings SET status = 'claimed', claim_digest = ?, device_name = ?, request_payload = ?,"
        " expires_at = ? WHERE code_digest = ? AND direction = 'offer' AND status = 'open' AND expires_at > ?"
        f" RETURNING {_COLUMNS}",
        (claim_digest, device_name, payload, expires_at, code_digest, now),
    ))


def select_pairing(conn: Connection, user_id: int, pairing_id: int, now: float) -> Pairing | None:
    return _pairing(conn.one(
        f"SELECT {_COLUMNS} FROM pairings WHERE id = ? AND user_id = ? AND expires_at > ?",
        (pairing_id, user_id, now),
    ))


def select_pairing_by_claim(conn: Connection, claim_digest: bytes, now: float) -> Pairing | None:
    return _pairing(conn.one(
        f"SELECT {_COLUMNS} FROM pairings WHERE claim_digest = ? AND expires_at > ?", (claim_digest, now),
    ))


def decide_pairing(conn: Connection, user_id: int, pairing_id: int, status: str, payload: str | None,
                   now: float) -> Pairing | None:
    """approved or refused, once, and only after a device has claimed it."""
    return _pairing(conn.one(
        "UPDATE pairings SET status = ?, approval_payload = ?, request_payload = NULL"
        " WHERE id = ? AND user_id = ? AND status = 'claimed' AND expires_at > ?"
        f" RETURNING {_COLUMNS}",
        (status, payload, pairing_id, user_id, now),
    ))


def take_approved_pairing(conn: Connection, claim_digest: bytes, now: float) -> Pairing | None:
    """The approval, once: the row (and its payload) goes as it is read."""
    return _pairing(conn.one(
        f"DELETE FROM pairings WHERE claim_digest = ? AND status = 'approved' AND expires_at > ? RETURNING {_COLUMNS}",
        (claim_digest, now),
    ))
