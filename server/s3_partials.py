"""The bytes of unfinished resumable uploads on object storage, so a resume may reach any host.

partials.py's interface (read its docstring), in the spirit of tusd's s3store:

- one S3 multipart upload per tus upload, made at creation, at the key of
  the stored name the finished file will have (a random name ending in
  TUS_SUFFIX, so the sweeps can tell these from object_storage.S3Upload's
  short-lived ones);
- a PATCH's bytes go out as parts of PART_SIZE (8 MiB, object_storage's),
  at most one part buffered; what is left at its end, smaller than a part,
  is an "incomplete part" object, <prefix>partials/<id>.<offset>.tail, which
  the next PATCH reads back and prepends to its bytes. The committed offset
  is bytes in finished parts plus the tail's size, recorded in the row
  after each part or tail is stored;
- the counted parts' numbers and ETags are kept in the row (`parts`,
  JSON, written with the offset in one UPDATE), not read back from
  ListParts: a part sent by a PATCH that then broke or failed its checksum
  is in ListParts but must not count, and re-sending under the same number
  is no cure (SeaweedFS then lists the number twice and may complete with
  the old bytes; tests/test_s3_partials.py caught it). So a PATCH takes new
  numbers past every one used so far (one ListParts at its start), and
  only the row says which parts make the file. The column grows by ~45
  bytes a part (6 KB for 1 GiB). The tail's name carries the offset it
  belongs to, so writing a new tail never spoils the one the row still
  counts; the old one is deleted after the row moves;
- one PATCH at a time across hosts: a lease in the shared database
  (models/uploads.take_lease, one UPDATE … WHERE free or expired), refreshed
  every LEASE_SECONDS/3 while the PATCH runs and released at its end; a dead
  host's lease expires after LEASE_SECONDS. Every offset update checks the
  lease, so a PATCH that lost it records nothing;
- finishing: the buffered tail goes as the last part and
  CompleteMultipartUpload makes the object. complete() is idempotent (the
  object already there with the upload's length), for a finish retried
  after its transaction failed;
- termination and expiry abort the multipart upload and delete the tails;
  reconcile() (the sweeper, one host) aborts multipart uploads and deletes
  tails no unfinished row owns.

The object store unreachable is StorageUnavailable, a 503: the offset stays
the last one recorded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time

from .models import uploads as uploads_model
from .object_storage import PART_SIZE, TUS_SUFFIX, S3Storage
from .partials import PartialBusy, PartialMissing
from .storage import StorageUnavailable

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
_TAIL = re.compile(r"([0-9a-f]{32})\.([0-9]+)\.tail")


def _errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, OSError)


class S3PartialStore:
    def __init__(self, storage: S3Storage, db) -> None:
        self.storage = storage
        self.db = db

    def tail_name(self, public_id: str, offset: int) -> str:
        """Relative to the storage prefix, as storage.remove takes names."""
        return f"partials/{public_id}.{offset}.tail"

    async def create(self, public_id: str) -> tuple[str, str]:
        stored_name = secrets.token_hex(16) + TUS_SUFFIX
        try:
            started = await self.storage.client.create_multipart_upload(Bucket=self.storage.bucket,
                                                                        Key=self.storage.key(stored_name))
        except _errors() as error:
            log.warning("object store refused a multipart upload: %s", error)
            raise StorageUnavailable("starting an upload") from None
        return started["UploadId"], stored_name

    async def open(self, public_id: str) -> "S3Partial":
        token = secrets.token_hex(16)
        now = time.time()
        if not await self.db.write(uploads_model.take_lease, public_id, token, now, now + LEASE_SECONDS):
            state = await self.db.read(uploads_model.select_partial_state, public_id)
            if state is None or state[0]:
                raise PartialMissing(public_id)
            raise PartialBusy(public_id)
        return S3Partial(self, public_id, token)

    async def remove(self, refs: list) -> None:
        """Abort each unfinished upload's multipart upload (a finished one's
        is complete: NoSuchUpload) and delete its tails."""
        tails: list[str] = []
        for ref in refs:
            if ref.multipart_id is not None and ref.stored_name is not None:
                if not await self.storage._abort(self.storage.key(ref.stored_name), ref.multipart_id):
                    log.warning("could not abort a resumable upload's multipart upload; the sweeper retries")
            tails += await self._tails_of(ref.public_id)
        await self.storage.remove(tails)

    async def _tails_of(self, public_id: str) -> list[str]:
        try:
            names, _ = await self._list_tails(f"partials/{public_id}.")
        except _errors():
            return []  # left for the sweeper
        return names

    async def _list_tails(self, under: str, older_than: float | None = None) -> tuple[list[str], list[str]]:
        names, old = [], []
        paginator = self.storage.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.storage.bucket, Prefix=self.storage.prefix + under):
            for entry in page.get("Contents", []):
                name = entry["Key"][len(self.storage.prefix):]
                names.append(name)
                if older_than is not None and entry["LastModified"].timestamp() < older_than:
                    old.append(name)
        return names, old

    async def reconcile(self, db, now: float, grace_seconds: float) -> int:
        """Multipart uploads of TUS_SUFFIX and tails that no unfinished row
        owns, older than the grace period (a row may be committing), gone,
        in batches. Returns how many."""
        try:
            return await self._reconcile(db, now - grace_seconds)
        except _errors() as error:
            raise StorageUnavailable(f"listing the partial uploads: {error}") from None

    async def _reconcile(self, db, older_than: float) -> int:
        storage = self.storage
        candidates: list[tuple[str, str]] = []
        paginator = storage.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=storage.bucket, Prefix=storage.prefix):
            for upload in page.get("Uploads", []):
                if upload["Key"].endswith(TUS_SUFFIX) and upload["Initiated"].timestamp() < older_than:
                    candidates.append((upload["Key"], upload["UploadId"]))
        removed = 0
        for start in range(0, len(candidates), 500):
            batch = candidates[start:start + 500]
            owned = await db.read(uploads_model.select_unfinished_multipart_ids, [u for _, u in batch])
            for key, upload_id in batch:
                if upload_id not in owned and await storage._abort(key, upload_id):
                    removed += 1
        _, old = await self._list_tails("partials/", older_than)
        for start in range(0, len(old), 500):
            batch = [(name, _TAIL.fullmatch(name[len("partials/"):])) for name in old[start:start + 500]]
            offsets = await db.read(uploads_model.select_unfinished_offsets,
                                    [m.group(1) for _, m in batch if m])
            stale = [name for name, m in batch if m is None or offsets.get(m.group(1)) != int(m.group(2))]
            await storage.remove(stale)
            removed += len(stale)
        return removed


class S3Partial:
    """One PATCH's hold on an upload in the bucket: the lease, the parts
    it sends and the tail it keeps in memory."""

    def __init__(self, store: S3PartialStore, public_id: str, lease: str) -> None:
        self._store = store
        self._storage = store.storage
        self.public_id = public_id
        self.lease = lease
        self._buffer = bytearray()
        self._parts: list[list] = []  # [number, etag] of the parts sent, counted or about to be
        self._next_number = 1
        self._sent = 0  # bytes in parts
        self._durable = 0
        self._tail_of: int | None = None  # the offset whose tail object the row counts
        self._upload = None
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._store.db.write(uploads_model.refresh_lease, self.public_id, self.lease,
                                                  time.time() + LEASE_SECONDS):
                    return  # lost: the next offset update says so
            except Exception:
                log.warning("could not refresh an upload's lease; retrying")

    @property
    def _key(self) -> str:
        return self._storage.key(self._upload.stored_name)

    async def begin(self, upload) -> None:
        if upload.multipart_id is None:
            raise PartialMissing(self.public_id)  # a row from before the bytes moved to the bucket
        self._upload = upload
        parts, tail = divmod(upload.offset, PART_SIZE)
        self._parts = json.loads(upload.parts or "[]")
        if len(self._parts) != parts:
            raise StorageUnavailable("reading an upload")  # the row contradicts itself: never seen
        self._sent = parts * PART_SIZE
        self._durable = upload.offset
        from botocore.exceptions import ClientError

        try:
            used = await self._used_numbers()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload" or upload.offset != upload.length:
                log.warning("object store refused to list an upload's parts: %s", error)
                raise StorageUnavailable("reading an upload") from None
            used = set()  # completed by a finish whose transaction failed: complete() finds the object
        except _errors() as error:
            log.warning("object store refused to list an upload's parts: %s", error)
            raise StorageUnavailable("reading an upload") from None
        self._next_number = max(used | {number for number, _ in self._parts} | {0}) + 1
        if tail:
            name = self._store.tail_name(self.public_id, upload.offset)
            try:
                answer = await self._storage.client.get_object(Bucket=self._storage.bucket,
                                                               Key=self._storage.key(name))
                async with answer["Body"] as body:
                    data = await body.read()
            except _errors() as error:
                log.warning("object store refused an upload's tail: %s", error)
                raise StorageUnavailable("reading an upload") from None
            if len(data) != tail:
                raise StorageUnavailable("reading an upload")  # not the tail the row counts
            self._buffer = bytearray(data)
            self._tail_of = upload.offset

    async def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            await self._send_part(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]
            self._sent += PART_SIZE

    async def _send_part(self, data: bytes) -> None:
        number, self._next_number = self._next_number, self._next_number + 1
        try:
            answer = await self._storage.client.upload_part(Bucket=self._storage.bucket, Key=self._key,
                                                            UploadId=self._upload.multipart_id, PartNumber=number,
                                                            Body=data)
        except _errors() as error:
            log.warning("object store refused a part: %s", error)
            raise StorageUnavailable("storing an upload") from None
        self._parts.append([number, answer["ETag"]])

    @property
    def parts_json(self) -> str:
        """The parts the offset about to be recorded counts (the buffered
        tail is no part yet)."""
        return json.dumps(self._parts[: self._sent // PART_SIZE], separators=(",", ":"))

    async def checkpoint(self) -> int | None:
        """After each part: the parts are durable (the buffered rest is not)."""
        return self._sent if self._sent > self._durable else None

    async def sync(self) -> int:
        offset = self._sent + len(self._buffer)
        if offset != self._durable and self._buffer:
            name = self._store.tail_name(self.public_id, offset)
            try:
                await self._storage.client.put_object(Bucket=self._storage.bucket, Key=self._storage.key(name),
                                                      Body=bytes(self._buffer))
            except _errors() as error:
                log.warning("object store refused an upload's tail: %s", error)
                raise StorageUnavailable("storing an upload") from None
        return offset

    async def recorded(self, offset: int) -> None:
        old, self._durable = self._tail_of, offset
        self._tail_of = offset if offset % PART_SIZE else None
        if old is not None and old != offset:
            await self._storage.remove([self._store.tail_name(self.public_id, old)])  # a failure: the sweeper's

    async def complete(self) -> str:
        """The multipart upload as the stored file; returns its name."""
        upload, client, bucket = self._upload, self._storage.client, self._storage.bucket
        from botocore.exceptions import ClientError

        try:
            if upload.length == 0:
                await client.put_object(Bucket=bucket, Key=self._key, Body=b"")
                await self._storage._abort(self._key, upload.multipart_id)
                return upload.stored_name
            if self._buffer:
                await self._send_part(bytes(self._buffer))
            parts = [{"PartNumber": number, "ETag": etag} for number, etag in self._parts]
            try:
                await client.complete_multipart_upload(Bucket=bucket, Key=self._key, UploadId=upload.multipart_id,
                                                       MultipartUpload={"Parts": parts})
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
                # Completed by an earlier finish whose transaction failed.
                head = await client.head_object(Bucket=bucket, Key=self._key)
                if head["ContentLength"] != upload.length:
                    raise StorageUnavailable("finishing an upload") from None
        except _errors() as error:
            log.warning("object store refused to finish an upload: %s", error)
            raise StorageUnavailable("finishing an upload") from None
        return upload.stored_name

    async def _used_numbers(self) -> set[int]:
        used: set[int] = set()
        paginator = self._storage.client.get_paginator("list_parts")
        async for page in paginator.paginate(Bucket=self._storage.bucket, Key=self._key,
                                             UploadId=self._upload.multipart_id):
            used.update(part["PartNumber"] for part in page.get("Parts", []))
        return used

    async def close(self) -> None:
        self._refresher.cancel()
        try:
            await asyncio.shield(self._store.db.write(uploads_model.release_lease, self.public_id, self.lease))
        except Exception:
            log.warning("could not release an upload's lease; it expires by itself")
