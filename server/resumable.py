"""Resumable uploads (tus 1.0.0): creating one, appending to it, finishing it.

What HTTP says (headers, status codes) is blueprints/uploads.py; this is the
upload's life:

- creation reserves the declared length of the quota (models/uploads.py) in
  the transaction that inserts the row, after the partial file exists, so a
  row never lacks its bytes;
- a PATCH holds the partial's lock for its whole length (partials.py's
  flock on the local disk; with object storage, s3_partials.py's lease in
  the shared database): a second one on the same upload is refused, never
  interleaved. It starts at the row's committed offset (ignoring bytes a
  broken earlier PATCH left past it), and records how far it got when it
  ends, however it ends (and at each checkpoint on the way), each time
  after the bytes are durable: the offset a HEAD answers, after a restart
  or on another host too, is bytes kept. With Upload-Checksum no
  checkpoint is recorded: the PATCH's bytes count only once its digest
  matches;
- the last byte finishes it as every upload finishes (buffer.py): the file
  is fsynced and linked into files/ (or its multipart upload completed),
  then one transaction marks the upload finished, inserts the file and its
  item or share link, and trims; then the devices are told. A finish that
  fails (a link limit reached meanwhile) leaves the upload whole at its
  full offset; an empty PATCH retries it.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import AsyncIterator

from . import buffer, e2e
from .e2e_blobs import ENCODING, max_body_bytes
from .auth import Principal
from .errors import APIError
from .models import files as files_model
from .models import items as items_model
from .models import uploads as uploads_model
from .models import users as users_model
from .models.uploads import ResumableUpload
from .partials import CHECKPOINT_BYTES, PartialBusy, PartialMissing, PartialStore  # noqa: F401 (re-exported)
from .services import services
from .share_links import reusable_token, share_json
METADATA_MAX_CHARS = 4096
TARGETS = ("buffer", "share")


def partials():
    """Where unfinished uploads' bytes live: with object storage, in the
    bucket (a resume may reach any host); else this host's data dir."""
    svc = services()
    if not svc.storage.local:
        from .s3_partials import S3PartialStore

        return S3PartialStore(svc.storage, svc.db)
    return PartialStore(svc.settings.data_dir / "uploads")


def new_public_id() -> str:
    return secrets.token_hex(16)


# --- errors -------------------------------------------------------------------

def not_found() -> APIError:
    return APIError(404, "not_found", "No such upload. It may have expired, been finished long ago or deleted.")


def busy() -> APIError:
    return APIError(409, "upload_busy", "Another request is sending to this upload right now; "
                                        "one at a time. Ask for its offset (HEAD) and continue from there.")


def wrong_offset(expected: int) -> APIError:
    return APIError(409, "offset_mismatch", f"This upload is at offset {expected}; send Upload-Offset: {expected}.")


def _too_long(length: int) -> APIError:
    return APIError(413, "too_large", f"The body goes past the upload's length of {length} bytes.")


def checksum_mismatch() -> APIError:
    # 460 is tus's own status (checksum extension); none of this PATCH's bytes count.
    return APIError(460, "checksum_mismatch", "The body's sha256 does not match Upload-Checksum; "
                                              "nothing of it was kept. Send it again.")


# --- creation -----------------------------------------------------------------

@dataclass(frozen=True)
class NewUpload:
    length: int
    filename: str
    mime: str
    target: str
    share_seconds: int | None
    metadata: str  # the Upload-Metadata header as sent, echoed by HEAD
    share_max_downloads: int | None = None
    share_password_hash: str | None = None
    encrypted_key: str | None = None  # an end-to-end encrypted upload's blobs (docs/e2e.md)
    encrypted_meta: str | None = None
    encrypted_key: str | None = None
    encrypted_meta: str | None = None


def _quota_error(used: int, quota: int) -> APIError:
    return APIError(413, "quota_exceeded",
                    f"This upload would take you over your storage quota ({used} of {quota} bytes used, "
                    "resumable uploads in progress included). Delete some files or wait for them to expire.")


def _insert(conn, user_id: int, public_id: str, new: NewUpload, quota: int, now: float, expires_at: float,
            multipart_id: str | None, stored_name: str | None):
    # As buffer._insert_file: checked in the transaction that reserves, so
    # parallel creations cannot both fit.
    users_model.lock_user(conn, user_id)
    e2e.check_write(conn, user_id, sealed_of(new))
    used = files_model.select_used_bytes(conn, user_id, now)
    if used + new.length > quota:
        raise _quota_error(used, quota)
    return uploads_model.insert_upload(conn, user_id, public_id, new.length, new.filename, new.mime, new.target,
                                       new.share_seconds, new.share_max_downloads, new.share_password_hash,
                                       new.metadata, new.encrypted_key, new.encrypted_meta,
                                       now, expires_at, multipart_id, stored_name)


def sealed_of(upload: NewUpload | ResumableUpload) -> e2e.Sealed | None:
    """An encrypted upload's blobs as every other encrypted write has them."""
    if upload.encrypted_meta is None:
        return None
    return e2e.sealed_from(ENCODING, upload.encrypted_key, upload.encrypted_meta,
                           needs_key=upload.encrypted_key is not None)


async def create(principal: Principal, new: NewUpload) -> ResumableUpload:
    settings = services().settings
    largest = max_body_bytes(settings.max_upload_bytes) if new.encrypted_meta is not None else settings.max_upload_bytes
    if new.length > largest:
        raise APIError(413, "too_large", f"Files are limited to {settings.max_upload_bytes} bytes on this server.")
    if new.target == "share":
        await buffer.check_share_room(principal.user_id)
    await services().storage.check_free(new.length)
    public_id = new_public_id()
    store = partials()
    multipart_id, stored_name = await store.create(public_id)
    now = time.time()
    try:
        return await services().db.write(_insert, principal.user_id, public_id, new, settings.quota_bytes, now,
                                         now + settings.upload_expire_seconds, multipart_id, stored_name)
    except asyncio.CancelledError:
        raise  # committed (db.write): the row owns the file
    except BaseException:
        await store.remove([uploads_model.PartialRef(public_id, False, multipart_id, stored_name)])
        raise


# --- appending ----------------------------------------------------------------

def parse_checksum(header: str | None) -> bytes | None:
    """Upload-Checksum: `sha256 <base64 digest>`; None without the header."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise APIError(400, "unsupported_checksum", "Upload-Checksum supports sha256 only (Tus-Checksum-Algorithm).")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise APIError(400, "invalid_checksum", "Upload-Checksum is `sha256 ` and the base64 of a 32-byte digest.")
    return digest


@dataclass
class Appended:
    upload: ResumableUpload
    offset: int
    result: dict | None  # what a finished upload became (result_json)


class _Writer:
    """One PATCH's bytes into the open partial, with its offset recorded
    each time the partial says a part of them is durable."""

    def __init__(self, upload: ResumableUpload, partial, checkpoints: bool) -> None:
        self.upload = upload
        self.partial = partial
        self.committed = upload.offset
        self.received = upload.offset
        self._checkpoints = checkpoints

    async def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.upload.length:
            raise _too_long(self.upload.length)
        self.received += len(chunk)
        await self.partial.write(chunk)
        if self._checkpoints:
            durable = await self.partial.checkpoint()
            if durable is not None:
                await self._record(durable)

    async def record(self) -> None:
        """Every byte received so far counts: made durable, then the row."""
        await self._record(await self.partial.sync())

    async def _record(self, durable: int) -> None:
        if durable == self.committed:
            return
        if not await services().db.write(uploads_model.update_offset, self.upload.id, self.committed, durable,
                                         self.partial.lease, self.partial.parts_json):
            # Deleted under us (impossible while we hold the lock), or the
            # lease lost to expiry: another PATCH may own the upload now.
            raise busy() if self.partial.lease is not None else not_found()
        self.committed = durable
        await self.partial.recorded(durable)


async def append(principal: Principal, public_id: str, offset: int, body: AsyncIterator[bytes],
                 checksum: bytes | None) -> Appended:
    """A PATCH: the body appended at `offset` (the upload's offset, or 409)."""
    store = partials()
    try:
        partial = await store.open(public_id)
    except PartialBusy:
        raise busy() from None
    except PartialMissing:
        return await _already_finished(principal, public_id, offset)
    try:
        # Read under the lock: a DELETE or another PATCH that finished just
        # before has left its mark in the row.
        upload = await services().db.read(uploads_model.select_upload, principal.user_id, public_id, time.time())
        if upload is None:
            raise not_found()
        if offset != upload.offset:
            raise wrong_offset(upload.offset)
        await partial.begin(upload)
        writer = _Writer(upload, partial, checkpoints=checksum is None)
        await _receive(writer, body, checksum)
        if writer.committed < upload.length:
            return Appended(upload, writer.committed, None)
        result = await _finish(principal, upload, partial)
        await store.remove([upload])  # its bytes live on under the file's stored name
        return Appended(upload, upload.length, result)
    finally:
        await partial.close()


async def _receive(writer: _Writer, body: AsyncIterator[bytes], checksum: bytes | None) -> None:
    hasher = hashlib.sha256() if checksum is not None else None
    try:
        async for chunk in body:
            await writer.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
    except BaseException:
        # A broken PATCH (the client gone, a stall, the server stopping)
        # keeps what arrived, unless its checksum cannot be checked.
        if hasher is None:
            await asyncio.shield(_record_quietly(writer))
        raise
    if hasher is not None and not hmac.compare_digest(hasher.digest(), checksum):
        raise checksum_mismatch()
    await writer.record()


async def _record_quietly(writer: _Writer) -> None:
    try:
        await writer.record()
    except Exception:
        pass  # the next PATCH starts from the last recorded offset instead


async def _already_finished(principal: Principal, public_id: str, offset: int) -> Appended:
    """A PATCH to an upload whose bytes are already a file: a client that
    missed the last answer learns what the upload became."""
    upload, result = await state(principal, public_id)
    if not upload.finished:
        raise not_found()  # a row without its bytes: nothing can be appended
    if offset != upload.length:
        raise wrong_offset(upload.length)
    return Appended(upload, upload.length, result)


# --- finishing ----------------------------------------------------------------

class _LinkedUpload:
    """The finished partial file as buffer.py's upload: commit() places it
    among the stored files under a new name."""

    def __init__(self, partial, size: int) -> None:
        self._partial = partial
        self.size = size
        self.stored_name: str | None = None
        # On object storage the completed object is the upload's only copy:
        # if the finishing transaction fails, buffer.py leaves it in place
        # (the row, unfinished at its full offset, names it, so the file
        # sweep keeps it) and an empty PATCH retries the finish with it.
        self.keep_on_failure = hasattr(partial, "complete")

    async def commit(self) -> str:
        storage = services().storage
        if self.keep_on_failure:
            self.stored_name = await self._partial.complete()
            return self.stored_name
        if not storage.local:
            # The object store: the partial's bytes are sent as a new object
            # (object_storage.S3Storage.put_file); the partial stays whole
            # for a retry until the row commits.
            self.stored_name = await storage.put_file(self._partial.path, self.size)
            return self.stored_name
        name = secrets.token_hex(16)
        await storage.run_bulk(self._partial.link_into, storage.path_of(name))
        self.stored_name = name
        return name


@dataclass(frozen=True)
class _Claim:
    """Runs inside the finishing transaction (buffer.store_claimed_upload)."""

    upload_id: int
    target: str

    def before(self, conn, now: float) -> None:
        # First, so the length reserved stops counting before the file does.
        if not uploads_model.mark_finished(conn, self.upload_id, now):
            raise not_found()

    def after(self, conn, result) -> None:
        if self.target == "buffer":
            uploads_model.set_result(conn, self.upload_id, result.id, None)
        else:
            uploads_model.set_result(conn, self.upload_id, None, result.id)


async def _finish(principal: Principal, upload: ResumableUpload, partial) -> dict:
    linked = _LinkedUpload(partial, upload.length)
    claim = _Claim(upload.id, upload.target)
    sealed = sealed_of(upload)
    if upload.target == "buffer":
        item = await buffer.store_claimed_upload(principal, linked, upload.filename, upload.mime, claim,
                                                 sealed=sealed)
        return {"item": buffer.item_json(item)}
    token, share = await buffer.store_claimed_upload(principal, linked, upload.filename, upload.mime, claim,
                                                     lifetime=upload.share_seconds,
                                                     max_downloads=upload.share_max_downloads,
                                                     password_hash=upload.share_password_hash, sealed=sealed)
    return {"share": share_json(token, share)}


# --- reading and ending -------------------------------------------------------

def _read_state(conn, user_id: int, public_id: str, now: float):
    upload = uploads_model.select_upload(conn, user_id, public_id, now)
    if upload is None or not upload.finished:
        return upload, None, None
    item = items_model.select_item(conn, user_id, upload.item_id, now) if upload.item_id is not None else None
    share = files_model.select_share(conn, user_id, upload.share_id) if upload.share_id is not None else None
    return upload, item, share


async def state(principal: Principal, public_id: str) -> tuple[ResumableUpload, dict | None]:
    """The upload and, once finished, what it became (if that still exists)."""
    upload, item, share = await services().db.read(_read_state, principal.user_id, public_id, time.time())
    if upload is None:
        raise not_found()
    result = None
    if item is not None:
        result = {"item": buffer.item_json(item)}
    elif share is not None and share.expires_at > time.time():
        token = reusable_token(share)
        if token is not None:
            result = {"share": share_json(token, share)}
    return upload, result


async def terminate(principal: Principal, public_id: str) -> None:
    """DELETE: the upload and its bytes go (a finished one's result stays)."""
    store = partials()
    upload = await services().db.read(uploads_model.select_upload, principal.user_id, public_id, time.time())
    if upload is None:
        raise not_found()
    partial = None
    if not upload.finished:
        try:
            partial = await store.open(public_id)
        except PartialBusy:
            raise busy() from None
        except PartialMissing:
            pass
    try:
        if not await services().db.write(uploads_model.delete_upload, principal.user_id, upload.id):
            raise not_found()
    finally:
        if partial is not None:
            await partial.close()
    await store.remove([upload])


# --- the sweeper's part -------------------------------------------------------

SWEEP_BATCH = 500
LEFTOVER_GRACE_SECONDS = 600  # a partial file whose row is still being committed


async def sweep(db, store, now: float) -> dict[str, int]:
    """Expired uploads and their bytes; partial bytes no unfinished row owns."""
    expired = 0
    while True:
        rows = await db.write(uploads_model.delete_expired_batch, now, SWEEP_BATCH)
        # A finished one's partial is normally gone already (a finish that
        # stopped before removing it leaves it behind).
        await store.remove(rows)
        expired += len(rows)
        if len(rows) < SWEEP_BATCH:
            break
        await asyncio.sleep(0)
    leftovers = await store.reconcile(db, now, LEFTOVER_GRACE_SECONDS)
    return {"uploads": expired, "partial_files": leftovers}
