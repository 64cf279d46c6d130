"""Files in S3-compatible object storage (CLOUDBUFFER_STORAGE_URL=s3://bucket/prefix).

The same interface as storage.Storage (the local files dir), so buffer.py,
uploads.py, downloads.py and the sweeper do not know which one they have:
`new_upload(limit, too_large)` gives an upload to `async with`, write to and
commit(); `remove`, `check_free`, `text_preview`, `scan`,
`sweep_temporaries`, `start` and `stop`. Downloads are `object_response`
(storage.Storage's files go through Quart's send_file instead).

- An upload sends 8 MiB parts of a multipart upload as they fill, so one
  upload holds at most a part and a chunk in memory whatever its size; a
  file smaller than a part is one PUT at commit. commit() returns once the
  object is complete, and only then does the caller commit the row
  (buffer._commit_upload_row); leaving the block without commit() aborts
  the multipart upload. An abort that fails (the store unreachable) is
  remembered and retried by this process's sweeper; a host that died mid-
  upload leaves one that `sweep_temporaries` aborts once it has been idle
  STALE_MULTIPART_SECONDS (a bucket lifecycle rule can do the same:
  docs/operations.md).
- Downloads stream from GetObject with the Range the request asked for.
- The store unreachable or refusing is StorageUnavailable, a 503: nothing
  was stored, and the client may try again.

aiobotocore (botocore's asyncio client) rather than boto3 in a thread: a
body streams chunk by chunk on the event loop without a thread per
transfer, and the credentials, the endpoint and the signing are botocore's
own (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE …).
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

from quart import Response
from quart.wrappers.response import ResponseBody

from .errors import APIError
from .storage import StorageUnavailable, disk_full_error

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # S3's smallest part is 5 MiB (but the last)
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
DOWNLOAD_CHUNK = 256 * 1024
STALE_MULTIPART_SECONDS = 24 * 3600  # an upload whose parts stopped coming this long ago is dead
TUS_SUFFIX = "-tus"  # the stored names of resumable uploads, whose multipart uploads s3_partials.py sweeps


def parse_storage_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) of s3://bucket/prefix."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _is_missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")


class S3Storage:
    local = False

    def __init__(self, url: str, endpoint: str | None, data_dir: Path, min_free_bytes: int = 0) -> None:
        self.bucket, self.prefix = parse_storage_url(url)
        self.endpoint = endpoint
        self.data_dir = data_dir  # the database's disk, if it is a local SQLite file
        self.min_free_bytes = min_free_bytes
        self._stack: contextlib.AsyncExitStack | None = None
        self.client: Any = None
        self._failed_aborts: dict[str, str] = {}  # key -> upload id, retried by the sweeper
        self._last_scan: set[str] = set()

    def key(self, stored_name: str) -> str:
        return self.prefix + stored_name

    # --- lifetime -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the client; create the bucket if it is missing and the
        credentials may (a bucket that cannot be made is a start-up error)."""
        from aiobotocore.session import get_session
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60,
            # A custom endpoint (MinIO, SeaweedFS, Ceph) seldom has a DNS name per bucket.
            s3={"addressing_style": "path"} if self.endpoint else {},
            # Checksums on every part are what AWS now asks by default; other
            # stores may not know the header.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._stack = contextlib.AsyncExitStack()
        self.client = await self._stack.enter_async_context(
            get_session().create_client("s3", endpoint_url=self.endpoint, region_name=region, config=config))
        await self._ensure_bucket()

    async def _ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if not _is_missing(error):
                raise StorageStartError(f"cannot use bucket {self.bucket!r}: {error}") from None
        except BotoCoreError as error:
            raise StorageStartError(f"cannot reach the object store: {error}") from None
        try:
            await self.client.create_bucket(Bucket=self.bucket)
            log.info("created bucket %s", self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # another host was quicker
                raise StorageStartError(f"bucket {self.bucket!r} does not exist and could not be created "
                                        f"with these credentials: {error}") from None

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self.client = None

    def close(self) -> None:
        pass  # the client is closed by stop(), on the event loop

    # --- what the app calls -------------------------------------------------------------------------

    def _free_bytes(self) -> int:
        stat = os.statvfs(self.data_dir)
        return stat.f_bavail * stat.f_frsize

    async def check_free(self, incoming: int = 0) -> None:
        """Uploads take no local disk here; texts still live in the
        database, whose disk (a local SQLite file) keeps its floor."""
        import asyncio

        if self.min_free_bytes and await asyncio.to_thread(self._free_bytes) < self.min_free_bytes:
            raise disk_full_error()

    async def run_bulk(self, function: Callable, *args):
        """Blocking file work on a thread: only the resumable uploads'
        partial files (server/partials.py) are on this host's disk here."""
        import asyncio

        return await asyncio.to_thread(function, *args)

    def new_upload(self, limit: int, too_large: Callable[[], APIError]) -> "S3Upload":
        return S3Upload(self, limit, too_large)

    async def put_file(self, path: Path, size: int) -> str:
        """A whole local file (a finished resumable upload's partial) as a
        new object, streamed part by part; returns its stored name."""
        import asyncio

        upload = self.new_upload(size, lambda: APIError(409, "conflict", "The upload grew while it was stored."))
        with open(path, "rb") as handle:
            async with upload:
                while True:
                    chunk = await asyncio.to_thread(handle.read, PART_SIZE)
                    if not chunk:
                        break
                    await upload.write(chunk)
                return await upload.commit()

    async def remove(self, stored_names: list[str]) -> None:
        """Delete objects, in batches. Called after the rows are gone: an
        object left behind by a failure here is an orphan the sweeper finds."""
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(stored_names), DELETE_BATCH):
            batch = stored_names[start:start + DELETE_BATCH]
            try:
                answer = await self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self.key(name)} for name in batch], "Quiet": True})
            except (BotoCoreError, ClientError) as error:
                log.warning("could not delete %d object(s), left for the sweeper: %s", len(batch), error)
                continue
            for failed in answer.get("Errors", []):
                log.warning("could not delete an object (%s), left for the sweeper", failed.get("Code"))

    async def text_preview(self, stored_name: str, limit: int) -> tuple[str, bool] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=self.key(stored_name),
                                                  Range=f"bytes=0-{limit}")
            async with answer["Body"] as body:
                data = await body.read()
        except ClientError as error:
            if _is_missing(error):
                return None
            raise StorageUnavailable("reading a file") from None
        except BotoCoreError:
            raise StorageUnavailable("reading a file") from None
        return data[:limit].decode("utf-8", errors="replace"), len(data) > limit

    async def object_response(self, stored_name: str, size: int, mimetype: str, created_at: float) -> Response:
        """The object as a streamed answer whose range Quart's
        make_conditional may set (downloads.file_response)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await self.client.head_object(Bucket=self.bucket, Key=self.key(stored_name))
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(stored_name) from None
            raise StorageUnavailable("reading a file") from None
        except BotoCoreError:
            raise StorageUnavailable("reading a file") from None
        response = Response(ObjectBody(self, stored_name, size), mimetype=mimetype)
        response.content_length = size
        response.set_etag(stored_name)  # a stored name is never reused for other bytes
        response.last_modified = created_at
        return response

    # --- what the sweeper calls ---------------------------------------------------------------------

    async def scan(self, now: float, grace_seconds: float) -> tuple[set[str], list[str]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await self._scan(now, grace_seconds)
        except (BotoCoreError, ClientError, OSError) as error:
            raise StorageUnavailable(f"listing the files: {error}") from None

    async def _scan(self, now: float, grace_seconds: float) -> tuple[set[str], list[str]]:
        """Every stored object's name, and those the sweeper may judge as
        orphans: older than the grace period, and already there at the last
        scan. A multipart object's LastModified is when its upload began, so
        age alone would not tell an object completed a moment ago, whose row
        is being committed, from an orphan; one that was complete a whole
        sweep interval ago is past that moment."""
        names: set[str] = set()
        old: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                name = entry["Key"][len(self.prefix):]
                if not name or "/" in name:
                    continue  # not ours (a key under a deeper prefix)
                names.add(name)
                if now - entry["LastModified"].timestamp() > grace_seconds and name in self._last_scan:
                    old.append(name)
        self._last_scan = names
        return names, old

    async def sweep_temporaries(self, idle_seconds: float, now: float) -> int:
        """Abort the multipart uploads this process failed to abort, and any
        whose last part is older than STALE_MULTIPART_SECONDS (a host that
        died mid-upload). Returns how many were aborted."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await self._sweep_temporaries(now)
        except (BotoCoreError, ClientError, OSError) as error:
            raise StorageUnavailable(f"listing the multipart uploads: {error}") from None

    async def _sweep_temporaries(self, now: float) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        aborted = 0
        for key, upload_id in list(self._failed_aborts.items()):
            if await self._abort(key, upload_id):
                del self._failed_aborts[key]
                aborted += 1
        paginator = self.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Key"].endswith(TUS_SUFFIX):
                    continue  # a resumable upload may idle for days: its row decides (s3_partials.py)
                last = upload["Initiated"].timestamp()
                if now - last <= STALE_MULTIPART_SECONDS:
                    continue
                try:
                    parts = await self.client.list_parts(Bucket=self.bucket, Key=upload["Key"],
                                                         UploadId=upload["UploadId"])
                except (BotoCoreError, ClientError):
                    continue
                last = max([last] + [part["LastModified"].timestamp() for part in parts.get("Parts", [])])
                if now - last > STALE_MULTIPART_SECONDS and await self._abort(upload["Key"], upload["UploadId"]):
                    aborted += 1
        return aborted

    async def _abort(self, key: str, upload_id: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code != "NoSuchUpload":
                return False
        except BotoCoreError:
            return False
        return True

    def remember_failed_abort(self, key: str, upload_id: str) -> None:
        self._failed_aborts[key] = upload_id


class StorageStartError(Exception):
    """The bucket cannot be used; the server does not start."""


class S3Upload:
    """One file being received into the object store, as storage.Upload does
    into the files dir: `async with`, write(), commit()."""

    def __init__(self, storage: S3Storage, limit: int, too_large: Callable[[], APIError]) -> None:
        self._storage = storage
        self._limit = limit
        self._too_large = too_large
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._name = secrets.token_hex(16)
        self.size = 0
        self.stored_name: str | None = None

    @property
    def key(self) -> str:
        return self._storage.key(self._name)

    async def __aenter__(self) -> "S3Upload":
        await self._storage.check_free()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self.stored_name is None and self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            if not await self._storage._abort(self.key, upload_id):
                log.warning("could not abort a multipart upload; the sweeper retries")
                self._storage.remember_failed_abort(self.key, upload_id)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            raise self._too_large()
        self._buffer += data
        if len(self._buffer) >= PART_SIZE:
            part, self._buffer = self._buffer, bytearray()
            await self._send_part(part)

    async def _send_part(self, part: bytearray) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket = self._storage.client, self._storage.bucket
        try:
            if self._upload_id is None:
                started = await client.create_multipart_upload(Bucket=bucket, Key=self.key)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            answer = await client.upload_part(Bucket=bucket, Key=self.key, UploadId=self._upload_id,
                                              PartNumber=number, Body=bytes(part))
        except (BotoCoreError, ClientError, OSError) as error:
            log.warning("object store refused a part: %s", error)
            raise StorageUnavailable("storing a file") from None
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def commit(self) -> str:
        """Complete the object; returns its stored name. The caller commits
        the row next (and removes the object if that fails)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket = self._storage.client, self._storage.bucket
        try:
            if self._upload_id is None:
                await client.put_object(Bucket=bucket, Key=self.key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    part, self._buffer = self._buffer, bytearray()
                    await self._send_part(part)
                await client.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self._upload_id,
                                                       MultipartUpload={"Parts": self._parts})
        except (BotoCoreError, ClientError, OSError) as error:
            log.warning("object store refused an upload: %s", error)
            raise StorageUnavailable("storing a file") from None
        self._buffer = bytearray()
        self._upload_id = None
        self.stored_name = self._name
        return self._name


class ObjectBody(ResponseBody):
    """A GetObject stream as Quart's response body, with the range that
    Response.make_conditional sets."""

    def __init__(self, storage: S3Storage, stored_name: str, size: int) -> None:
        self._storage = storage
        self._stored_name = stored_name
        self.size = size
        self.begin = 0
        self.end = size
        self._body: Any = None

    async def make_conditional(self, begin: int, end: int | None) -> int:
        self.begin = begin
        self.end = self.size if end is None else min(self.size, end)
        return self.size

    async def __aenter__(self) -> "ObjectBody":
        return self

    async def __aexit__(self, exc_type, exc_value, tb) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self.end <= self.begin:
            return
        extra = {} if (self.begin, self.end) == (0, self.size) else {"Range": f"bytes={self.begin}-{self.end - 1}"}
        answer = await self._storage.client.get_object(Bucket=self._storage.bucket,
                                                       Key=self._storage.key(self._stored_name), **extra)
        self._body = answer["Body"]
        while True:
            chunk = await self._body.read(DOWNLOAD_CHUNK)
            if not chunk:
                return
            yield chunk
