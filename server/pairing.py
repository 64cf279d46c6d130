""""Add a device": a logged-in device vouches for a new one, no password typed.

1. The logged-in device (a cookie session) asks for a code: 10 characters
   of Crockford base32 (50 random bits), shown as a QR code of /pair?code=…
   and as ABCDE-FGHJK to type. It lives PAIRING_SECONDS and is claimed once.
2. The new device sends the code, the name it wants and, optionally, an
   opaque payload (a later issue: its public key). It gets a claim secret
   (a cookie for browsers) to wait with; the code is used up.
3. The first device sees the name (a `pairing` live message, or by polling)
   and approves, optionally with an opaque payload of its own (a key wrapped
   for the new device), or refuses.
4. The new device, holding its claim, takes the approval: it becomes a
   session of the same account, named as it asked, and gets the payload.
   The row goes with it, so payloads are stored only until consumed.

Only digests are stored: HMAC of the secret key over the code (a copy of
the database alone does not let anyone try codes offline) and over the
claim.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from quart import current_app

from .buffer import publish
from .e2e_blobs import b64u_decode, check_public_key, invalid_key
from .errors import APIError
from .models import pairings as pairings_model
from .models.pairings import Pairing
from .services import services

PAIRING_SECONDS = 120
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 10
MAX_PAYLOAD_CHARS = 4096  # a public key is far less; any JSON of it stays under the 64 KiB body limit
MAX_APPROVAL_CHARS = 16384  # wraps of every epoch's key (~230 characters each) as JSON
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def normalize_code(typed: str) -> str | None:
    """What a person typed: any case, spaces and dashes, O for 0 and I or L for 1."""
    code = re.sub(r"[\s-]", "", typed).upper().translate(_CONFUSABLE)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def _digest(kind: bytes, secret: str) -> bytes:
    return hmac.new(current_app.secret_key.encode(), kind + b"\0" + secret.encode(), hashlib.sha256).digest()


def code_digest(code: str) -> bytes:
    return _digest(b"pairing code", code)


def claim_digest(claim: str) -> bytes:
    return _digest(b"pairing claim", claim)


def no_such_pairing() -> APIError:
    return APIError(404, "not_found", "No such pairing: it may have expired or been completed.")


def invalid_code() -> APIError:
    return APIError(404, "invalid_code", "That code is not valid: it may have expired (codes last 2 minutes), "
                                         "been used already, or been mistyped.")


def code_of_payload(payload: str) -> str:
    """docs/e2e.md: the code commits to the showing device's key, the first
    50 bits of SHA-256 of its SPKI in Crockford base32, so the server (or
    anyone) cannot hand the scanning device another key for the same code."""
    spki = b64u_decode(payload, "payload", invalid_key)
    number = int.from_bytes(hashlib.sha256(spki).digest()[:7], "big") >> (56 - 5 * CODE_LENGTH)
    return "".join(CODE_ALPHABET[(number >> (5 * (CODE_LENGTH - 1 - i))) & 31] for i in range(CODE_LENGTH))


def code_taken() -> APIError:
    return APIError(409, "code_taken", "A live pairing already has the code of that key: make a new key pair "
                                       "and try again.")


def _write_start(conn, user_id: int, session_id: int, digest: bytes, now: float,
                 payload: str | None) -> Pairing | None:
    pairings_model.delete_expired_pairings(conn, now)
    pairings_model.delete_open_pairings_of_session(conn, session_id)
    return pairings_model.insert_pairing(conn, user_id, session_id, digest, now, now + PAIRING_SECONDS, payload)


async def start(user_id: int, session_id: int, payload: str | None = None) -> tuple[str, Pairing]:
    """A code to show; with `payload` (the showing device's ephemeral P-256
    key, docs/e2e.md) the code is derived from it, else random."""
    if payload is not None:
        code = code_of_payload(check_public_key(payload, "payload"))
    else:
        code = new_code()
    pairing = await services().db.write(_write_start, user_id, session_id, code_digest(code), time.time(), payload)
    if pairing is None:
        raise code_taken()
    return code, pairing


def _write_request(conn, code: bytes, claim: bytes, device_name: str, payload: str, now: float) -> Pairing | None:
    pairings_model.delete_expired_pairings(conn, now)
    return pairings_model.insert_request(conn, code, claim, device_name, payload, now, now + PAIRING_SECONDS)


async def request(device_name: str, payload: str) -> tuple[str, str, Pairing]:
    """Flow B: a new device, logged out, opens a request to join with its
    ephemeral key; it holds its claim from the start. Returns (code, claim,
    pairing)."""
    code = code_of_payload(check_public_key(payload, "payload"))
    secret = secrets.token_urlsafe(32)
    now = time.time()
    pairing = await services().db.write(_write_request, code_digest(code), claim_digest(secret), device_name,
                                         payload, now)
    if pairing is None:
        raise code_taken()
    return code, secret, pairing


async def shown_payload(typed_code: str) -> Pairing:
    """The open pairing whose showing device's key the scanner asks for."""
    code = normalize_code(typed_code)
    if code is None:
        raise invalid_code()
    found = await services().db.read(pairings_model.select_open_pairing_by_code, code_digest(code), time.time())
    if found is None or shown_key(found) is None:
        raise invalid_code()
    return found


def shown_key(pairing: Pairing) -> str | None:
    return pairing.offer_payload if pairing.direction == "offer" else pairing.request_payload


async def take_request(user_id: int, device_kind: str, device_id: int, typed_code: str, payload: str) -> Pairing:
    """Flow B: the logged-in device takes the new device's request with its
    own ephemeral key; it approves (with the wraps) or refuses next. A
    terminal's API token may take one too: the new device then joins as an
    API token only (blueprints/pairing.py, /pair/complete)."""
    code = normalize_code(typed_code)
    if code is None:
        raise invalid_code()
    check_public_key(payload, "payload")
    now = time.time()
    session_id, token_id = (device_id, None) if device_kind == "session" else (None, device_id)
    pairing = await services().db.write(pairings_model.take_request, code_digest(code), user_id, session_id,
                                        token_id, payload, now, now + PAIRING_SECONDS)
    if pairing is None:
        raise invalid_code()
    await publish(user_id, pairing_message(pairing))
    return pairing


async def claim(typed_code: str, device_name: str, payload: str | None) -> tuple[str, Pairing]:
    code = normalize_code(typed_code)
    if code is None:
        raise invalid_code()
    secret = secrets.token_urlsafe(32)
    now = time.time()
    pairing = await services().db.write(pairings_model.claim_pairing, code_digest(code), claim_digest(secret),
                                         device_name, payload, now, now + PAIRING_SECONDS)
    if pairing is None:
        raise invalid_code()
    await publish(pairing.user_id, pairing_message(pairing))
    return secret, pairing


def _write_decision(conn, user_id: int, token_id: int | None, pairing_id: int, approve: bool, payload: str | None,
                    now: float) -> Pairing | None:
    found = pairings_model.select_pairing(conn, user_id, pairing_id, now)
    if found is None:
        raise no_such_pairing()
    if token_id is not None and found.token_id != token_id:
        # Else a token could approve a session's code, and the device that
        # claimed it would become a browser session minted by a token.
        raise APIError(403, "session_required", "An API token answers only the requests it took itself; "
                                                "answer this one on a logged-in device.")
    return pairings_model.decide_pairing(conn, user_id, pairing_id, "approved" if approve else "refused",
                                         payload if approve else None, now)


async def decide(user_id: int, token_id: int | None, pairing_id: int, approve: bool, payload: str | None) -> Pairing:
    """`token_id`: the deciding API token's, None for a session."""
    pairing = await services().db.write(_write_decision, user_id, token_id, pairing_id, approve, payload, time.time())
    if pairing is None:
        raise APIError(409, "not_waiting", "No device is waiting on that code any more: it may have expired "
                                           "or been answered already.")
    await publish(user_id, pairing_message(pairing))
    return pairing


def pairing_message(pairing: Pairing) -> dict:
    """The live `pairing` message, also the JSON of GET /account/pairings/{id}."""
    return {"type": "pairing", "id": pairing.id, "status": pairing.status, "device_name": pairing.device_name,
            "request_payload": pairing.request_payload, "expires_at": pairing.expires_at}
