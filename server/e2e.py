"""End-to-end encryption, the server's part (docs/e2e.md, docs/security.md).

The server holds an account's key state (epoch, recovery key pair sealed by
the person's recovery key, device public keys, wrapped account keys) and
enforces the rules no device can enforce alone: once an account is
encrypted, nothing in plaintext is stored for it; a key blob must name the
current epoch; a rotation must cover every remaining device; a revoked
device loses its wraps and makes a rotation due. It never sees a key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .services import services

from .auth import Principal
from .e2e_blobs import ENCODING, check_key_blob, check_meta, check_opaque, check_public_key, check_wrap
from .errors import APIError
from .models import e2e as e2e_model
from .models import users as users_model

MAX_WRAPS = 100  # a rotation wraps for every device; far more than anyone enrolls, and 100 fit a 64 KiB body
MAX_SEALED_CHARS = 1024  # nonce, a PKCS#8 P-256 key and a tag: ~230 characters
ATTEST_BYTES = 32  # HMAC-SHA256


def device_of(principal: Principal) -> str:
    """The caller as a recipient: session:<id> or token:<id>."""
    return f"{principal.device_kind}:{principal.device_id}"


def encrypted_account() -> APIError:
    return APIError(409, "encrypted_account",
                    "This account is end-to-end encrypted: the server takes only items encrypted on your "
                    "device, never plaintext. Use `cloudbuffer copy` (or the app) to add it, and "
                    "`cloudbuffer paste` to read the buffer.")


def not_encrypted() -> APIError:
    return APIError(409, "not_encrypted", "This account does not use end-to-end encryption: send the item in "
                                          "plaintext, or turn encryption on first (`cloudbuffer e2e enable`).")


def stale_key(epoch: int) -> APIError:
    return APIError(409, "stale_key", f"The account key has changed: the current epoch is {epoch}. "
                                      "Fetch GET /account/e2e and encrypt again.")


def require_epoch(conn, user_id: int) -> int:
    """The account's epoch (in the caller's transaction); refuses an account
    without encryption."""
    epoch = e2e_model.select_epoch(conn, user_id)
    if epoch is None:
        raise not_encrypted()
    return epoch


@dataclass(frozen=True)
class Sealed:
    """What an encrypted write carries besides its body: the key blob (none
    for a share link, whose key is in its URL fragment), the epoch it names,
    and the meta blob (b64u strings)."""

    key: str | None
    meta: str
    epoch: int | None


def sealed_from(encoding, key, meta, *, needs_key: bool = True) -> Sealed | None:
    """The encryption of a write from its headers (X-Encrypted,
    X-Encrypted-Key, X-Encrypted-Meta) or the socket's `set` fields; None
    for a plaintext write. Only the blobs' aes128gcm headers are checked."""
    if encoding is None:
        return None
    if encoding != ENCODING:
        raise APIError(400, "invalid_ciphertext", f"The only encryption this server takes is {ENCODING}.")
    epoch = check_key_blob(key) if needs_key else None
    return Sealed(key if needs_key else None, check_meta(meta), epoch)


def check_write(conn, user_id: int, sealed: Sealed | None) -> None:
    """Plaintext only to a plaintext account, ciphertext only to an
    encrypted one, under its current epoch. Called inside every write's
    transaction (the word that counts), and through db.read to refuse before
    a body is read."""
    epoch = e2e_model.select_epoch(conn, user_id)
    if sealed is None:
        if epoch is not None:
            raise encrypted_account()
        return
    if epoch is None:
        raise not_encrypted()
    if sealed.epoch is not None and sealed.epoch != epoch:
        raise stale_key(epoch)


# --- the key state ---------------------------------------------------------------

def _read_state(conn, user_id: int, device: str) -> dict[str, Any]:
    """The key state as one snapshot: epoch, devices and wraps agree."""
    account = e2e_model.select_account(conn, user_id)
    if account is None:
        return {"enabled": False, "device": device, "user_id": user_id}
    devices = e2e_model.select_devices(conn, user_id)
    wraps = e2e_model.select_wraps_for(conn, user_id, device)
    # The recovery key's wraps go to every device: useless without the
    # recovery key, and a device recovering has nothing else to unwrap.
    recovery_wraps = e2e_model.select_wraps_for(conn, user_id, "recovery")
    return {
        "enabled": True, "epoch": account.epoch, "rotation_needed": account.rotation_needed, "device": device,
        "user_id": user_id,
        "recovery": {"public_key": account.recovery_public_key, "sealed_private_key": account.recovery_sealed_key,
                     "wraps": [{"epoch": wrap.epoch, "blob": wrap.blob} for wrap in recovery_wraps]},
        "devices": [{"device": d.device, "name": d.name, "public_key": d.public_key,
                     "attest": d.attest} for d in devices],
        "wraps": [{"epoch": wrap.epoch, "blob": wrap.blob} for wrap in wraps],
        "epochs": [{"epoch": epoch, "proof": proof}
                   for epoch, proof in e2e_model.select_epoch_proofs(conn, user_id)],
    }


async def state(principal: Principal) -> dict[str, Any]:
    return await services().db.read(_read_state, principal.user_id, device_of(principal))


def _object(data: Any, name: str) -> dict:
    if not isinstance(data, dict):
        raise APIError(400, "invalid_input", f"'{name}' must be an object.")
    return data


def _epoch_field(value: Any, name: str = "epoch") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**9:
        raise APIError(400, "invalid_input", f"'{name}' must be a whole number from 1.")
    return value


def _attest(value: Any) -> str:
    attest = check_opaque(value, "attest", 64, min_bytes=ATTEST_BYTES)
    if len(attest) != 43:  # b64u of 32 bytes
        raise APIError(400, "invalid_input", "'attest' is an HMAC-SHA256 (32 bytes, base64url).")
    return attest


def _wrap_list(data: Any, name: str = "wraps") -> list:
    if not isinstance(data, list) or not 0 < len(data) <= MAX_WRAPS:
        raise APIError(400, "invalid_wraps", f"'{name}' is a list of 1 to {MAX_WRAPS} wraps.")
    return [_object(entry, name) for entry in data]


def _write_enable(conn, user_id: int, me: str, recovery_key: str, sealed: str, public_key: str, attest: str,
                  wraps: dict[str, str]) -> list[str]:
    """One transaction: the account, its history gone, the first device and
    wraps. Returns the stored names to unlink after commit."""
    users_model.lock_user(conn, user_id)  # as every write checking the key state does
    if not e2e_model.insert_account(conn, user_id, recovery_key, sealed):
        raise APIError(409, "already_enabled", "End-to-end encryption is already on for this account.")
    removed = e2e_model.delete_history(conn, user_id)
    users_model.increment_user_seq(conn, user_id)  # devices see the history go
    e2e_model.upsert_device(conn, user_id, me, public_key, attest)
    e2e_model.upsert_wrap(conn, user_id, 1, me, wraps["self"])
    e2e_model.upsert_wrap(conn, user_id, 1, "recovery", wraps["recovery"])
    return removed


async def enable(principal: Principal, data: dict) -> dict[str, Any]:
    """Encryption on at epoch 1, the plaintext history deleted in the same
    transaction. The caller has checked the password."""
    recovery = _object(data.get("recovery"), "recovery")
    recovery_key = check_public_key(recovery.get("public_key"), "recovery.public_key")
    sealed = check_opaque(recovery.get("sealed_private_key"), "recovery.sealed_private_key", MAX_SEALED_CHARS,
                          min_bytes=12 + 16 + 32)
    device = _object(data.get("device"), "device")
    public_key = check_public_key(device.get("public_key"), "device.public_key")
    attest = _attest(device.get("attest"))
    wraps: dict[str, str] = {}
    for entry in _wrap_list(data.get("wraps")):
        recipient = entry.get("recipient")
        if recipient not in ("self", "recovery") or recipient in wraps:
            raise APIError(400, "invalid_wraps", "Enabling takes one wrap for \"self\" and one for \"recovery\".")
        if _epoch_field(entry.get("epoch"), "wraps.epoch") != 1:
            raise APIError(400, "invalid_wraps", "The first key is epoch 1.")
        wraps[recipient] = check_wrap(entry.get("blob"), f"The {recipient} wrap")
    if set(wraps) != {"self", "recovery"}:
        raise APIError(400, "invalid_wraps", "Enabling takes one wrap for \"self\" and one for \"recovery\".")

    removed = await services().db.write(_write_enable, principal.user_id, device_of(principal), recovery_key,
                                         sealed, public_key, attest, wraps)
    await services().storage.remove(removed)
    from .buffer import publish_current  # here: buffer.py checks every write with this module

    await publish_current(principal.user_id)
    await publish_state(principal.user_id)
    return await state(principal)


async def register_device(principal: Principal, data: dict) -> dict[str, Any]:
    public_key = check_public_key(data.get("public_key"), "public_key")
    attest = _attest(data.get("attest"))
    wraps: dict[int, str] = {}
    if data.get("wraps") not in (None, []):
        for entry in _wrap_list(data.get("wraps")):
            epoch = _epoch_field(entry.get("epoch"), "wraps.epoch")
            if epoch in wraps:
                raise APIError(400, "invalid_wraps", f"Two wraps for epoch {epoch}.")
            wraps[epoch] = check_wrap(entry.get("blob"), f"The wrap of epoch {epoch}")
    await services().db.write(_write_device, principal.user_id, device_of(principal), public_key, attest, wraps)
    return await state(principal)


def _write_device(conn, user_id: int, me: str, public_key: str, attest: str, wraps: dict[int, str]) -> None:
    users_model.lock_user(conn, user_id)  # as every write checking the key state does
    current = require_epoch(conn, user_id)
    if wraps and max(wraps) > current:
        raise stale_key(current)
    e2e_model.upsert_device(conn, user_id, me, public_key, attest)
    for epoch, blob in wraps.items():
        e2e_model.upsert_wrap(conn, user_id, epoch, me, blob)


async def rotate(principal: Principal, data: dict) -> dict[str, Any]:
    """A new epoch, accepted only on top of the current one and only with a
    wrap for every registered device and the recovery key."""
    new_epoch = _epoch_field(data.get("epoch"))
    proof = check_opaque(data.get("proof"), "proof", 43, min_bytes=32)
    wraps: dict[str, str] = {}
    for entry in _wrap_list(data.get("wraps")):
        recipient = entry.get("recipient")
        if not _is_recipient(recipient) or recipient in wraps:
            raise APIError(400, "invalid_wraps", "Each wrap names one recipient, once: \"session:<id>\", "
                                                 "\"token:<id>\" or \"recovery\".")
        wraps[recipient] = check_wrap(entry.get("blob"), f"The wrap for {recipient}")
    await services().db.write(_write_rotation, principal.user_id, device_of(principal), new_epoch, proof, wraps)
    await publish_state(principal.user_id)
    return await state(principal)


def _write_rotation(conn, user_id: int, me: str, new_epoch: int, proof: str, wraps: dict[str, str]) -> None:
    """One transaction: the epoch checked and advanced, every wrap, the proof."""
    users_model.lock_user(conn, user_id)  # as every write checking the key state does
    current = require_epoch(conn, user_id)
    if new_epoch != current + 1:
        raise stale_key(current)
    registered = {device.device for device in e2e_model.select_devices(conn, user_id)}
    if me not in registered:
        raise APIError(409, "not_enrolled", "Only a device that has registered its public key "
                                            "(PUT /account/e2e/device) can rotate the account key.")
    wanted = registered | {"recovery"}
    if set(wraps) != wanted:
        missing = sorted(wanted - set(wraps))
        extra = sorted(set(wraps) - wanted)
        parts = ([f"missing a wrap for {', '.join(missing)}"] if missing else []) + (
            [f"no registered device {', '.join(extra)}"] if extra else [])
        raise APIError(409, "wraps_mismatch", "The rotation must wrap the new key for every registered "
                                              f"device and the recovery key: {'; '.join(parts)}. "
                                              "Fetch GET /account/e2e and try again.")
    if not e2e_model.advance_epoch(conn, user_id, current):
        raise stale_key(current)
    for recipient, blob in wraps.items():
        e2e_model.upsert_wrap(conn, user_id, new_epoch, recipient, blob)
    e2e_model.insert_epoch_proof(conn, user_id, new_epoch, proof)


def _is_recipient(value: Any) -> bool:
    if value == "recovery":
        return True
    if not isinstance(value, str):
        return False
    kind, _, number = value.partition(":")
    return kind in ("session", "token") and number.isascii() and number.isdigit() and len(number) < 19 and (
        number == str(int(number)))


# --- revoking and telling ----------------------------------------------------------

def state_message(epoch: int, rotation_needed: bool) -> dict[str, Any]:
    """The live `e2e` message (docs/protocol.md)."""
    return {"type": "e2e", "epoch": epoch, "rotation_needed": rotation_needed}


async def publish_state(user_id: int) -> None:
    account = await services().db.read(e2e_model.select_account, user_id)
    if account is not None:
        await services().broker.publish(user_id, json.dumps(state_message(account.epoch, account.rotation_needed),
                                                             separators=(",", ":")))


async def settle_revoked(user_id: int) -> None:
    """After devices of the user were revoked (in the transaction that
    deleted them, their wraps went and their key rows were marked): the mark
    becomes rotation_needed, the key row goes, and the devices are told."""
    account = await services().db.write(e2e_model.settle_revoked, user_id)
    if account is not None:
        await services().broker.publish(user_id, json.dumps(state_message(account.epoch, True),
                                                             separators=(",", ":")))
