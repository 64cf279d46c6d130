"""Writing the buffer and telling the user's devices about it.

Every way in (POST /file/buffer, /file/load, the WebSocket `set`, the share
target) goes through here, so the rules are one set: limits, quota, file cap,
history length, seq in the same transaction, and the broker event after commit.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from quart import current_app

from . import e2e
from .auth import Principal, hash_password
from .config import Settings
from .e2e_blobs import ENCODING, b64u_encode, check_item_key_blob, max_body_bytes
from .errors import APIError
from .models import files as files_model
from .models import items as items_model
from .models import users as users_model
from .models.items import Item
from .share_links import derive_token, new_nonce, reusable_token
from .storage import Upload, served_mime
from .services import services

INLINE_TEXT_BYTES = 64 * 1024  # texts up to this ride along in the event


def _settings() -> Settings:
    return services().settings


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


def _read_snapshot(conn, user_id: int, now: float) -> tuple[int, Item | None]:
    return users_model.select_user_seq(conn, user_id), items_model.select_current_item(conn, user_id, now)


async def snapshot(user_id: int) -> dict[str, Any]:
    seq, item = await services().db.read(_read_snapshot, user_id, time.time())
    if item is not None and item.seq < seq:
        # The newest item was deleted or expired: the buffer is what remains,
        # but the seq still moves forward so devices accept the change.
        return {**buffer_message(seq, item), "seq": seq}
    return buffer_message(seq, item)


async def publish(user_id: int, message: dict[str, Any]) -> None:
    # One encode per event, however many sockets receive it.
    await services().broker.publish(user_id, json.dumps(message, separators=(",", ":")))


async def publish_current(user_id: int) -> None:
    await publish(user_id, await snapshot(user_id))


def text_too_large() -> APIError:
    limit = _settings().max_text_bytes
    return APIError(413, "too_large", f"Text is limited to {limit} bytes; send it as a file instead.")


def check_text(text: str) -> bytes:
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        # Only a lone surrogate cannot be encoded, and JSON can carry one
        # ("\ud800" in a socket's `set`); it is no text anyone copied.
        raise APIError(400, "invalid_text", "Text must be valid Unicode (it holds a lone surrogate).") from None
    if len(encoded) > _settings().max_text_bytes:
        raise text_too_large()
    return encoded


def _write_text(conn, user_id: int, device_name: str, text: str, size: int, now: float, expire_seconds: int,
                history_size: int, sealed: e2e.Sealed | None = None, ciphertext: bytes | None = None,
                ) -> tuple[Item, list[str]]:
    """A text (or, with `sealed`, an encrypted text: text "" and its body
    blob in `ciphertext`) and the history trim, one transaction."""
    # Encrypted or not is decided again here, where it cannot change before
    # the commit (an account turning encryption on deletes its history).
    users_model.lock_user(conn, user_id)
    e2e.check_write(conn, user_id, sealed)
    item = items_model.insert_item(conn, user_id, kind="text", text=text, size=size, device_name=device_name,
                                   created_at=now, expires_at=now + expire_seconds,
                                   encrypted_key=sealed.key if sealed else None,
                                   encrypted_meta=sealed.meta if sealed else None, ciphertext=ciphertext)
    # A text adds no file, so the file cap cannot have been crossed, and a
    # file can only have lost its last item if the history was trimmed.
    trimmed = items_model.delete_items_beyond(conn, user_id, history_size)
    return item, files_model.delete_unreferenced_files(conn, user_id) if trimmed else []


async def store_text(principal: Principal, text: str) -> Item:
    size = len(check_text(text))
    await services().storage.check_free(size)  # texts live in the database: keep its disk from filling
    settings = _settings()
    # One trip to the database thread for the whole transaction: the text
    # post is the hot path (docs/benchmarks.md, #1, #6, #7).
    item, removed = await services().db.write(
        _write_text, principal.user_id, principal.device_name, text, size, time.time(), settings.expire_seconds,
        settings.history_size)
    await services().storage.remove(removed)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


def check_encrypted_text(body: bytes) -> None:
    """An encrypted text's body blob: aes128gcm under an item key, at most
    MAX_TEXT_BYTES of plaintext plus the format's overhead."""
    limit = max_body_bytes(_settings().max_text_bytes)
    if len(body) > limit:
        raise APIError(413, "too_large", f"An encrypted text is limited to {limit} bytes of aes128gcm "
                                         f"({_settings().max_text_bytes} bytes of text); send it as a file instead.")
    check_item_key_blob(body, "The body", may_be_empty=True)


async def store_encrypted_text(principal: Principal, sealed: e2e.Sealed, body: bytes) -> Item:
    check_encrypted_text(body)
    await services().storage.check_free(len(body))
    settings = _settings()
    item, removed = await services().db.write(
        _write_text, principal.user_id, principal.device_name, "", len(body), time.time(), settings.expire_seconds,
        settings.history_size, sealed, body)
    await services().storage.remove(removed)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


async def upload_allowance(user_id: int, *, encrypted: bool = False) -> tuple[int, Any]:
    """How many bytes the next upload may have, and the error past that. An
    encrypted file may be as big as MAX_UPLOAD_BYTES of plaintext in
    aes128gcm; the quota counts the bytes stored, ciphertext and all."""
    settings = _settings()
    used = await services().db.read(files_model.select_used_bytes, user_id, time.time())
    room = settings.quota_bytes - used
    quota = settings.quota_bytes
    largest = settings.max_upload_bytes
    limit = max_body_bytes(largest) if encrypted else largest
    if room < limit:
        return max(room, 0), lambda: _quota_error(used, quota)
    return limit, lambda: APIError(413, "too_large", f"Files are limited to {largest} bytes on this server.")


def _quota_error(used: int, quota: int) -> APIError:
    return APIError(
        413, "quota_exceeded",
        f"This upload would take you over your storage quota ({used} of {quota} bytes used). "
        "Delete some files or wait for them to expire.",
    )


ENCRYPTED_FILENAME = "cloudbuffer.aes128gcm"  # an encrypted file's real name is in its meta blob
ENCRYPTED_MIME = "application/octet-stream"


@dataclass(frozen=True)
class _Limits:
    """The settings a write transaction checks, read on the event loop (the
    database thread has no app context)."""
    quota_bytes: int
    expire_seconds: int
    history_size: int
    max_files: int
    max_shares: int

    @classmethod
    def from_settings(cls) -> "_Limits":
        settings = _settings()
        return cls(settings.quota_bytes, settings.expire_seconds, settings.history_size,
                   settings.max_files, settings.max_shares)


@dataclass(frozen=True)
class _NewFile:
    user_id: int
    stored_name: str
    filename: str
    mime: str
    size: int
    sealed: e2e.Sealed | None = None  # an end-to-end encrypted file's blobs (docs/e2e.md)


def _insert_file(conn, new: _NewFile, limits: _Limits, now: float):
    # The quota is checked (and the file cap applied, _trim) in the
    # transaction that adds the file, so parallel uploads cannot both fit;
    # so is the account's encryption, so no plaintext lands on an account
    # that turned it on meanwhile.
    users_model.lock_user(conn, new.user_id)
    e2e.check_write(conn, new.user_id, new.sealed)
    used = files_model.select_used_bytes(conn, new.user_id, now)
    if used + new.size > limits.quota_bytes:
        raise _quota_error(used, limits.quota_bytes)
    return files_model.insert_file(conn, new.user_id, new.stored_name, new.filename, new.mime, new.size,
                                   now + limits.expire_seconds,
                                   encrypted_meta=new.sealed.meta if new.sealed else None)


def _trim(conn, user_id: int, limits: _Limits) -> list[str]:
    items_model.delete_items_beyond(conn, user_id, limits.history_size)
    files_model.delete_items_of_files_over_cap(conn, user_id, limits.max_files)
    # A file leaves the disk only once neither the history nor a link needs it.
    return files_model.delete_unreferenced_files(conn, user_id)


def _write_and_trim(conn, write, new: _NewFile, limits: _Limits, *args):
    result = write(conn, new, limits, time.time(), *args)
    return result, _trim(conn, new.user_id, limits)


async def _commit_upload_row(upload: Upload, principal: Principal, filename: str, mime: str,
                             sealed: e2e.Sealed | None, write, *args):
    """Move the upload into place, then run `write(conn, new, limits, now,
    *args)` and the trims as one transaction; if the transaction fails the
    file is removed, so no file lacks a row. An encrypted file's real name
    and type are in its meta blob: the row holds placeholders."""
    await upload.commit()
    if sealed is not None:
        filename, mime = ENCRYPTED_FILENAME, ENCRYPTED_MIME
    new = _NewFile(principal.user_id, upload.stored_name, filename, mime, upload.size, sealed)  # named by the commit
    try:
        result, removed = await services().db.write(_write_and_trim, write, new, _Limits.from_settings(), *args)
    except asyncio.CancelledError:
        raise  # db.write says so only once the row has committed: the file is in use
    except BaseException:
        if not getattr(upload, "keep_on_failure", False):  # a resumable upload's only copy (resumable.py)
            await services().storage.remove([upload.stored_name])
        raise
    await services().storage.remove(removed)
    return result


def _write_file_item(conn, new: _NewFile, limits: _Limits, now: float, device_name: str) -> Item:
    stored = _insert_file(conn, new, limits, now)
    return items_model.insert_item(conn, new.user_id, kind="file", file_id=stored.id, size=stored.size,
                                   device_name=device_name, created_at=now, expires_at=stored.expires_at,
                                   encrypted_key=new.sealed.key if new.sealed else None,
                                   encrypted_meta=new.sealed.meta if new.sealed else None)


async def store_file_item(principal: Principal, upload: Upload, filename: str, mime: str,
                          sealed: e2e.Sealed | None = None) -> Item:
    item = await _commit_upload_row(upload, principal, filename, mime, sealed, _write_file_item,
                                    principal.device_name)
    await publish(principal.user_id, buffer_message(item.seq, item))
    return item


def share_lifetime(raw: Any) -> int:
    """Seconds a new link lives: the person's choice (`expires_in`) up to
    SHARE_MAX_SECONDS, else EXPIRE_SECONDS (or the maximum, if lower)."""
    settings = _settings()
    longest = settings.share_max_seconds
    if raw is None:
        return min(settings.expire_seconds, longest)
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
MAX_DOWNLOADS_LIMIT = 1_000_000


def share_max_downloads(raw: Any, burn: Any = None) -> int | None:
    """How many downloads a new link allows: `max_downloads` (1 up), or 1
    for `burn` (burn after reading); None, no limit."""
    if burn in (True, "true", "1", "on"):
        if raw not in (None, "", 1, "1"):
            raise APIError(400, "invalid_max_downloads", "burn means one download; leave max_downloads out.")
        return 1
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        count = raw
    elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,7}", raw):
        count = int(raw)
    else:
        count = 0
    if not 1 <= count <= MAX_DOWNLOADS_LIMIT:
        raise APIError(400, "invalid_max_downloads",
                       f"max_downloads is a whole number of downloads from 1 to {MAX_DOWNLOADS_LIMIT}.")
    return count


MAX_SHARE_PASSWORD = 200


async def share_password_hash(raw: Any) -> str | None:
    """A new link's password (optional), hashed with argon2id on a thread."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > MAX_SHARE_PASSWORD:
        raise APIError(400, "invalid_password", f"A link's password is text of at most {MAX_SHARE_PASSWORD} characters.")
    return await hash_password(raw)


def _too_many_links(limit: int) -> APIError:
    return APIError(409, "too_many_links",
                    f"You have {limit} live share links, the most this server allows. "
                    "Delete one on your profile page or wait for one to expire.")


async def check_share_room(user_id: int) -> None:
    """Refuse early (before an upload is received) when no link can be added."""
    limit = _settings().max_shares
    if await services().db.read(files_model.count_live_shares, user_id, time.time()) >= limit:
        raise _too_many_links(limit)


@dataclass(frozen=True)
class _NewLink:
    """A link's token and nonce, made on the event loop (the token is derived
    with the app's secret key) before the transaction that may store them."""
    token: str
    nonce: bytes
    lifetime: int
    max_downloads: int | None = None
    password_hash: str | None = None

    @classmethod
    def make(cls, lifetime: int, max_downloads: int | None = None, password_hash: str | None = None) -> "_NewLink":
        nonce = new_nonce()
        return cls(derive_token(nonce), nonce, lifetime, max_downloads, password_hash)


def _insert_share(conn, user_id: int, file_id: int, now: float, link: _NewLink, max_shares: int):
    # Counted inside the write transaction, so parallel requests cannot both
    # take the last place.
    users_model.lock_user(conn, user_id)
    if files_model.count_live_shares(conn, user_id, now) >= max_shares:
        raise _too_many_links(max_shares)
    # The file lives at least as long as its link; the history's own expiry
    # and trims no longer decide for it.
    files_model.extend_file_expiry(conn, file_id, now + link.lifetime)
    return files_model.insert_share(conn, user_id, file_id, link.token, link.nonce, now + link.lifetime,
                                    link.max_downloads, link.password_hash)


def _write_shared_file(conn, new: _NewFile, limits: _Limits, now: float, link: _NewLink):
    stored = _insert_file(conn, new, limits, now)
    return _insert_share(conn, new.user_id, stored.id, now, link, limits.max_shares)


async def store_shared_file(principal: Principal, upload: Upload, filename: str, mime: str, lifetime: int,
                            max_downloads: int | None = None, password_hash: str | None = None,
                            sealed: e2e.Sealed | None = None):
    """A /file/load upload: a stored file with a share link, not a buffer item."""
    link = _NewLink.make(lifetime, max_downloads, password_hash)
    share = await _commit_upload_row(upload, principal, filename, mime, sealed, _write_shared_file, link)
    return link.token, share


def _write_claimed(conn, new: _NewFile, limits: _Limits, now: float, claim, write, *args):
    claim.before(conn, now)
    result = write(conn, new, limits, now, *args)
    claim.after(conn, result)
    return result


async def store_claimed_upload(principal: Principal, upload, filename: str, mime: str, claim,
                               lifetime: int | None = None, max_downloads: int | None = None,
                               password_hash: str | None = None, sealed: e2e.Sealed | None = None):
    """A finished resumable upload (server/resumable.py): a buffer item, or
    with `lifetime` a share link, as store_file_item and store_shared_file
    make them; `claim.before(conn, now)` and `claim.after(conn, result)`
    run in the same transaction, around the rows. `upload` is anything with
    commit(), stored_name and size. Returns the item, or (token, share)."""
    if lifetime is None:
        item = await _commit_upload_row(upload, principal, filename, mime, sealed, _write_claimed, claim,
                                        _write_file_item, principal.device_name)
        await publish(principal.user_id, buffer_message(item.seq, item))
        return item
    link = _NewLink.make(lifetime, max_downloads, password_hash)
    share = await _commit_upload_row(upload, principal, filename, mime, sealed, _write_claimed, claim,
                                     _write_shared_file, link)
    return link.token, share


def _write_item_share(conn, user_id: int, item_id: int, now: float, link: _NewLink, new: bool, secret_key: str,
                      max_shares: int):
    item = items_model.select_item(conn, user_id, item_id, now)
    if item is None or item.kind != "file":
        raise APIError(404, "not_found", "No file with that id is in your buffer history.")
    if not new and link.max_downloads is None and link.password_hash is None:
        for existing in files_model.select_reusable_shares(conn, user_id, item.file_id, now):
            token = reusable_token(existing, secret_key)
            if token is not None:
                return token, existing, True
    return link.token, _insert_share(conn, user_id, item.file_id, now, link, max_shares), False


async def share_item(principal: Principal, item_id: int, lifetime: int, *, new: bool = False,
                     max_downloads: int | None = None, password_hash: str | None = None):
    """A share link for a file in the history: its live link if it has one
    (unless `new`, or a limit or password is asked for: such a link is
    always its own), else a new one. Returns (token, share, reused)."""
    return await services().db.write(
        _write_item_share, principal.user_id, item_id, time.time(),
        _NewLink.make(lifetime, max_downloads, password_hash), new,
        current_app.secret_key, _settings().max_shares)


def _write_delete_item(conn, user_id: int, item_id: int) -> list[str]:
    if not items_model.delete_item(conn, user_id, item_id):
        raise APIError(404, "not_found", "No item with that id is in your buffer history.")
    users_model.increment_user_seq(conn, user_id)
    return files_model.delete_unreferenced_files(conn, user_id)


async def delete_item(principal: Principal, item_id: int) -> None:
    removed = await services().db.write(_write_delete_item, principal.user_id, item_id)
    await services().storage.remove(removed)
    await publish_current(principal.user_id)


async def publish_revoked(user_id: int, device_keys: list[str], by: str | None = None) -> None:
    """Tell every worker to close these devices' sockets (logout, revoke).
    The `_revoke` type is internal: the live endpoint acts on it and never
    forwards it to clients. `by`: the device that did it, named in the close
    reason so the logged-out device can say why."""
    event: dict[str, Any] = {"type": "_revoke", "devices": device_keys}
    if by:
        event["by"] = by
    # First every worker's remembered credentials (server/principal_cache.py),
    # then the sockets.
    await services().broker.publish_account_change(user_id)
    await publish(user_id, event)
    if device_keys:
        # Every way of revoking a device ends here: an encrypted account now
        # needs a new key (its wraps went with the device's row; server/e2e.py).
        await e2e.settle_revoked(user_id)
