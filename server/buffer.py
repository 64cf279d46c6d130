"""Writing the buffer and telling the user's devices about it.

Every way in (POST /file/buffer, /file/load, the WebSocket `set`, the share
target) goes through here, so the rules are one set: limits, quota, file cap,
history length, seq in the same transaction, and the broker event after commit.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

from quart import current_app

from . import e2e
from .auth import Principal
from .e2e_blobs import ENCODING, b64u_encode, check_item_key_blob, max_body_bytes
from .errors import APIError
from .models import files as files_model
from .models import items as items_model
from .models import users as users_model
from .models.items import Item
from .share_links import derive_token, new_nonce, reusable_token
from .storage import Upload, served_mime

INLINE_TEXT_BYTES = 64 * 1024  # texts up to this ride along in the event


def _settings() -> dict[str, Any]:
    return current_app.config["CLOUDBUFFER"]


def buffer_message(seq: int, item: Item | None) -> dict[str, Any]:
    """The `buffer` message of the live protocol (docs/protocol.md)."""
    if item is None:
        return {"type": "buffer", "seq": seq, "kind": None}
    if item.encrypted_key is not None:
        return _encrypted_buffer_message(item)
    message: dict[str, Any] = {
        "type": "buffer",
        "seq": item.seq,
        "id": item.id,
        "kind": item.kind,
        "size": item.size,
        "filename": item.filename,
        "mime": served_mime(item.mime),
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "from": item.device_name,
    }
    if item.kind == "text" and item.size <= INLINE_TEXT_BYTES:
        message["text"] = item.text
    return message


def _encrypted_buffer_message(item: Item) -> dict[str, Any]:
    """docs/e2e.md: the blobs instead of filename, mime and text; a small
    text's body blob rides along as `ciphertext`."""
    message: dict[str, Any] = {
        "type": "buffer", "seq": item.seq, "id": item.id, "kind": item.kind, "size": item.size,
        "created_at": item.created_at, "expires_at": item.expires_at, "from": item.device_name,
        "encrypted": ENCODING, "key": item.encrypted_key, "meta": item.encrypted_meta,
    }
    if item.kind == "text" and item.size <= INLINE_TEXT_BYTES:
        message["ciphertext"] = b64u_encode(item.ciphertext or b"")
    return message


def item_json(item: Item) -> dict[str, Any]:
    """An item as the REST API returns it."""
    if item.encrypted_key is not None:
        return {"id": item.id, "seq": item.seq, "type": item.kind, "size": item.size, "from": item.device_name,
                "created_at": item.created_at, "expires_at": item.expires_at, "encrypted": ENCODING,
                "key": item.encrypted_key, "meta": item.encrypted_meta}
    data = {
        "id": item.id,
        "seq": item.seq,
        "type": item.kind,
        "size": item.size,
        "mime": served_mime(item.mime),
        "from": item.device_name,
        "created_at": item.created_at,
        "expires_at": item.expires_at,
    }
    if item.filename is not None:
        data["filename"] = item.filename
    return data


async def snapshot(user_id: int) -> dict[str, Any]:
    db = current_app.db
    seq = await users_model.select_user_seq(db.reader, user_id)
    item = await items_model.select_current_item(db.reader, user_id, time.time())
    if item is not None and item.seq < seq:
        # The newest item was deleted or expired: the buffer is what remains,
        # but the seq still moves forward so devices accept the change.
        return {**buffer_message(seq, item), "seq": seq}
    return buffer_message(seq, item)


async def publish(user_id: int, message: dict[str, Any]) -> None:
    # One encode per event, however many sockets receive it.
    await current_app.broker.publish(user_id, json.dumps(message, separators=(",", ":")))


async def publish_current(user_id: int) -> None:
    await publish(user_id, await snapshot(user_id))


def text_too_large() -> APIError:
    limit = _settings()["MAX_TEXT_BYTES"]
    return APIError(413, "too_large", f"Text is limited to {limit} bytes; send it as a file instead.")


def check_text(text: str) -> bytes:
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        # Only a lone surrogate cannot be encoded, and JSON can carry one
        # ("\ud800" in a socket's `set`); it is no text anyone copied.
        raise APIError(400, "invalid_text", "Text must be valid Unicode (it holds a lone surrogate).") from None
    if len(encoded) > _settings()["MAX_TEXT_BYTES"]:
        raise text_too_large()
    return encoded


async def store_text(principal: Principal, text: str) -> Item:
    size = len(check_text(text))
    await current_app.storage.check_free(size)  # texts live in the database: keep its disk from filling
    now = time.time()
    settings = _settings()

    def write(conn):
        # One trip to the database thread for the whole transaction: the text
        # post is the hot path (docs/benchmarks.md, #1, #6, #7).
        e2e.check_write_sync(conn, principal.user_id, None)
        item, trimmed = items_model.insert_text_and_trim_sync(
            conn, principal.user_id, text=text, size=size, device_name=principal.device_name,
            created_at=now, expires_at=now + settings["EXPIRE_SECONDS"], keep=settings["HISTORY_SIZE"],
        )
        # A text adds no file, so the file cap cannot have been crossed, and a
        # file can only have lost its last item if the history was trimmed.
        removed = files_model.delete_unreferenced_files_sync(conn, principal.user_id) if trimmed else []
        return item, removed

    item, removed = await current_app.db.run_transaction(write)
    await current_app.storage.remove(removed)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


def check_encrypted_text(body: bytes) -> None:
    """An encrypted text's body blob: aes128gcm under an item key, at most
    MAX_TEXT_BYTES of plaintext plus the format's overhead."""
    limit = max_body_bytes(_settings()["MAX_TEXT_BYTES"])
    if len(body) > limit:
        raise APIError(413, "too_large", f"An encrypted text is limited to {limit} bytes of aes128gcm "
                                         f"({_settings()['MAX_TEXT_BYTES']} bytes of text); send it as a file instead.")
    check_item_key_blob(body, "The body", may_be_empty=True)


async def store_encrypted_text(principal: Principal, sealed: e2e.Sealed, body: bytes) -> Item:
    check_encrypted_text(body)
    await current_app.storage.check_free(len(body))
    now = time.time()
    settings = _settings()

    def write(conn):
        e2e.check_write_sync(conn, principal.user_id, sealed)
        item, trimmed = items_model.insert_text_and_trim_sync(
            conn, principal.user_id, text="", size=len(body), device_name=principal.device_name,
            created_at=now, expires_at=now + settings["EXPIRE_SECONDS"], keep=settings["HISTORY_SIZE"],
            encrypted_key=sealed.key, encrypted_meta=sealed.meta, ciphertext=body,
        )
        removed = files_model.delete_unreferenced_files_sync(conn, principal.user_id) if trimmed else []
        return item, removed

    item, removed = await current_app.db.run_transaction(write)
    await current_app.storage.remove(removed)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


async def upload_allowance(user_id: int, *, encrypted: bool = False) -> tuple[int, Any]:
    """How many bytes the next upload may have, and the error past that. An
    encrypted file may be as big as MAX_UPLOAD_BYTES of plaintext in
    aes128gcm; the quota counts the bytes stored, ciphertext and all."""
    settings = _settings()
    used = await files_model.select_used_bytes(current_app.db.reader, user_id, time.time())
    room = settings["QUOTA_BYTES"] - used
    largest = settings["MAX_UPLOAD_BYTES"]
    limit = max_body_bytes(largest) if encrypted else largest
    if room < limit:
        return max(room, 0), lambda: _quota_error(used)
    return limit, lambda: APIError(413, "too_large", f"Files are limited to {largest} bytes on this server.")


def _quota_error(used: int) -> APIError:
    quota = _settings()["QUOTA_BYTES"]
    return APIError(
        413, "quota_exceeded",
        f"This upload would take you over your storage quota ({used} of {quota} bytes used). "
        "Delete some files or wait for them to expire.",
    )


ENCRYPTED_FILENAME = "cloudbuffer.aes128gcm"  # an encrypted file's real name is in its meta blob
ENCRYPTED_MIME = "application/octet-stream"


async def _insert_file(conn, principal: Principal, upload: Upload, filename: str, mime: str, now: float,
                       sealed: e2e.Sealed | None = None):
    settings = _settings()
    await e2e.check_write(conn, principal.user_id, sealed)
    used = await files_model.select_used_bytes(conn, principal.user_id, now)
    if used + upload.size > settings["QUOTA_BYTES"]:
        raise _quota_error(used)
    if sealed is not None:
        filename, mime = ENCRYPTED_FILENAME, ENCRYPTED_MIME
    return await files_model.insert_file(
        conn, principal.user_id, upload.stored_name, filename, mime, upload.size, now + settings["EXPIRE_SECONDS"],
        encrypted_meta=sealed.meta if sealed else None,
    )


async def _trim(conn, user_id: int) -> list[str]:
    settings = _settings()
    await items_model.delete_items_beyond(conn, user_id, settings["HISTORY_SIZE"])
    await files_model.delete_items_of_files_over_cap(conn, user_id, settings["MAX_FILES"])
    # A file leaves the disk only once neither the history nor a link needs it.
    return await files_model.delete_unreferenced_files(conn, user_id)


async def _commit_upload_row(upload: Upload, write):
    """Move the upload into place, then run `write(conn)` in one transaction;
    if the transaction fails the file is removed, so no file lacks a row."""
    await upload.commit()
    try:
        async with current_app.db.transaction() as conn:
            result = await write(conn)
            removed = await _trim(conn, result[0])
    except BaseException:
        await current_app.storage.remove([upload.stored_name])
        raise
    await current_app.storage.remove(removed)
    return result


async def store_file_item(principal: Principal, upload: Upload, filename: str, mime: str,
                          sealed: e2e.Sealed | None = None) -> Item:
    async def write(conn):
        now = time.time()
        stored = await _insert_file(conn, principal, upload, filename, mime, now, sealed)
        item = await items_model.insert_item(
            conn, principal.user_id, kind="file", file_id=stored.id, size=stored.size,
            device_name=principal.device_name, created_at=now, expires_at=stored.expires_at,
            encrypted_key=sealed.key if sealed else None, encrypted_meta=sealed.meta if sealed else None,
        )
        return principal.user_id, item

    _, item = await _commit_upload_row(upload, write)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


def share_lifetime(raw: Any) -> int:
    """Seconds a new link lives: the person's choice (`expires_in`) up to
    SHARE_MAX_SECONDS, else EXPIRE_SECONDS (or the maximum, if lower)."""
    settings = _settings()
    longest = settings["SHARE_MAX_SECONDS"]
    if raw is None:
        return min(settings["EXPIRE_SECONDS"], longest)
    # Only plain digits (or a JSON integer): int() would also take " 60", "6_0" and "٦٠".
    if isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,12}", raw):
        seconds = int(raw)
    else:
        seconds = 0
    if not MIN_SHARE_SECONDS <= seconds <= longest:
        raise APIError(400, "invalid_expiry",
                       f"expires_in is a whole number of seconds from {MIN_SHARE_SECONDS} to {longest}.")
    return seconds


MIN_SHARE_SECONDS = 60


def _too_many_links() -> APIError:
    limit = _settings()["MAX_SHARES"]
    return APIError(409, "too_many_links",
                    f"You have {limit} live share links, the most this server allows. "
                    "Delete one on your profile page or wait for one to expire.")


async def check_share_room(user_id: int) -> None:
    """Refuse early (before an upload is received) when no link can be added."""
    if await files_model.count_live_shares(current_app.db.reader, user_id, time.time()) >= _settings()["MAX_SHARES"]:
        raise _too_many_links()


async def _insert_share(conn, user_id: int, file_id: int, now: float, lifetime: int):
    # Counted inside the write transaction, so parallel requests cannot both
    # take the last place.
    if await files_model.count_live_shares(conn, user_id, now) >= _settings()["MAX_SHARES"]:
        raise _too_many_links()
    nonce = new_nonce()
    token = derive_token(nonce)
    # The file lives at least as long as its link; the history's own expiry
    # and trims no longer decide for it.
    await files_model.extend_file_expiry(conn, file_id, now + lifetime)
    return token, await files_model.insert_share(conn, user_id, file_id, token, nonce, now + lifetime)


async def store_shared_file(principal: Principal, upload: Upload, filename: str, mime: str, lifetime: int,
                            sealed: e2e.Sealed | None = None):
    """A /file/load upload: a stored file with a share link, not a buffer item."""

    async def write(conn):
        now = time.time()
        stored = await _insert_file(conn, principal, upload, filename, mime, now, sealed)
        token, share = await _insert_share(conn, principal.user_id, stored.id, now, lifetime)
        return principal.user_id, token, share

    _, token, share = await _commit_upload_row(upload, write)
    return token, share


async def share_item(principal: Principal, item_id: int, lifetime: int, *, new: bool = False):
    """A share link for a file in the history: its live link if it has one
    (unless `new`), else a new one. Returns (token, share, reused)."""
    now = time.time()
    async with current_app.db.transaction() as conn:
        item = await items_model.select_item(conn, principal.user_id, item_id, now)
        if item is None or item.kind != "file":
            raise APIError(404, "not_found", "No file with that id is in your buffer history.")
        if not new:
            for existing in await files_model.select_reusable_shares(conn, principal.user_id, item.file_id, now):
                token = reusable_token(existing)
                if token is not None:
                    return token, existing, True
        token, share = await _insert_share(conn, principal.user_id, item.file_id, now, lifetime)
    return token, share, False


async def delete_item(principal: Principal, item_id: int) -> None:
    async with current_app.db.transaction() as conn:
        if not await items_model.delete_item(conn, principal.user_id, item_id):
            raise APIError(404, "not_found", "No item with that id is in your buffer history.")
        await users_model.increment_user_seq(conn, principal.user_id)
        removed = await files_model.delete_unreferenced_files(conn, principal.user_id)
    await current_app.storage.remove(removed)
    await publish_current(principal.user_id)


async def publish_revoked(user_id: int, device_keys: list[str], by: str | None = None) -> None:
    """Tell every worker to close these devices' sockets (logout, revoke).
    The `_revoke` type is internal: the live endpoint acts on it and never
    forwards it to clients. `by`: the device that did it, named in the close
    reason so the logged-out device can say why."""
    event: dict[str, Any] = {"type": "_revoke", "devices": device_keys}
    if by:
        event["by"] = by
    await publish(user_id, event)
    if device_keys:
        # Every way of revoking a device ends here: an encrypted account now
        # needs a new key (its wraps went with the device's row; server/e2e.py).
        await e2e.settle_revoked(user_id)
