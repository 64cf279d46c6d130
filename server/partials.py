"""The bytes of unfinished resumable uploads: DATA_DIR/uploads/<id>.part.

Kept apart from storage.py's temp files (tmp/, removed when their process
dies or goes idle) because a resumable upload outlives its requests and its
process. The small interface here is all server/resumable.py uses, so
another place for partial bytes needs only another class with these methods
(server/s3_partials.py is the one for object storage):

- a store: `create(public_id) -> (multipart_id, stored_name)` (None, None
  here), `open(public_id)` (PartialBusy, PartialMissing), `remove(refs)`
  (models/uploads.PartialRef or rows, once their rows are gone) and
  `reconcile(db, now)` (the sweeper's: bytes no unfinished row owns);
- an open partial: `begin(upload)` at the row's committed offset, `write`,
  `checkpoint()` (a new durable offset to record, or None), `sync()` (all
  of it durable: the offset to record), `recorded(offset)` after the row
  moved, `lease` (the token the row's update must match, None here),
  `parts_json` (what the row keeps of the parts, None here) and
  `close()`. Local files finish by `link_into`; object storage by `complete`.

One PATCH at a time: `open()` takes an exclusive, non-blocking flock on the
file, so a second PATCH (in this process or another worker on this host)
is refused at once, and a process that dies lets go of its lock with its
descriptors. The database row holds the committed offset; bytes past it
(a PATCH cut off before it recorded its end) are cut off when the next
PATCH opens the file, so what is counted is always what is on disk.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import re
from pathlib import Path

from .data_dir import create_private_file

CHECKPOINT_BYTES = 64 * 1024 * 1024  # bytes of one PATCH between recorded offsets

_NAME = re.compile(r"[0-9a-f]{32}")


class PartialBusy(Exception):
    """Another request holds this upload."""


class PartialMissing(Exception):
    """The row says the upload exists but its bytes are gone."""


class PartialFile:
    """An open partial file, locked for this request. The blocking calls
    run on the upload threads (storage.run_bulk), a WRITE_BATCH at a time."""

    lease = None  # the flock is the lock
    parts_json = None  # one file, no parts

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path
        self._batch = bytearray()
        self._on_disk = 0
        self._durable = 0

    async def begin(self, upload) -> None:
        """Start at the committed offset, cutting off what a broken PATCH left past it."""
        from .services import services

        await services().storage.run_bulk(self.cut_to, upload.offset)
        self._on_disk = self._durable = upload.offset

    async def write(self, data: bytes) -> None:
        from .services import services
        from .storage import WRITE_BATCH

        self._batch += data
        if len(self._batch) >= WRITE_BATCH:
            await self._flush(services())

    async def _flush(self, svc) -> None:
        if self._batch:
            data, self._batch = self._batch, bytearray()
            await svc.storage.check_free(len(data))
            await svc.storage.run_bulk(self.write_sync, data)
            self._on_disk += len(data)

    async def checkpoint(self) -> int | None:
        if self._on_disk - self._durable < CHECKPOINT_BYTES:
            return None
        from .services import services

        await services().storage.run_bulk(self.sync_sync)
        self._durable = self._on_disk
        return self._durable

    async def sync(self) -> int:
        from .services import services

        svc = services()
        await self._flush(svc)
        if self._on_disk != self._durable:
            await svc.storage.run_bulk(self.sync_sync)
            self._durable = self._on_disk
        return self._durable

    async def recorded(self, offset: int) -> None:
        pass

    def cut_to(self, offset: int) -> None:
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def write_sync(self, data: bytes | bytearray) -> None:
        start = os.lseek(self._fd, 0, os.SEEK_CUR)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if hasattr(os, "posix_fadvise"):
            # Start writing these bytes to disk now (on Linux FADV_DONTNEED
            # starts the writeback without waiting for it), while the rest of
            # the PATCH arrives: its closing fsync then waits for the last
            # batch only, not for all of it (bench #8, docs/benchmarks.md).
            os.posix_fadvise(self._fd, start, len(data), os.POSIX_FADV_DONTNEED)

    def sync_sync(self) -> None:
        os.fsync(self._fd)

    def link_into(self, final_path: Path) -> None:
        """fsync, then a second name in the files directory, durable with
        its directory entry. A link, not a rename: if the row that should
        own the file cannot commit, the partial is still whole for a retry."""
        os.fsync(self._fd)
        os.link(self.path, final_path)
        dir_fd = os.open(final_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # lets go of the lock
            self._fd = -1


class PartialStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, public_id: str) -> Path:
        if not _NAME.fullmatch(public_id):
            raise ValueError("not an upload id")
        return self.directory / f"{public_id}.part"

    async def create(self, public_id: str) -> tuple[None, None]:
        await asyncio.to_thread(lambda: os.close(create_private_file(self.path_of(public_id))))
        return None, None

    def _open_sync(self, public_id: str) -> PartialFile:
        path = self.path_of(public_id)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PartialMissing(public_id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PartialBusy(public_id) from None
        return PartialFile(fd, path)

    async def open(self, public_id: str) -> PartialFile:
        """The file, locked for the caller (PartialBusy if another request
        has it); close() it when done."""
        return await asyncio.to_thread(self._open_sync, public_id)

    async def remove(self, refs: list) -> None:
        if refs:
            await asyncio.to_thread(self._remove_sync, [ref.public_id for ref in refs])

    async def reconcile(self, db, now: float, grace_seconds: float) -> int:
        """Partial files no unfinished row owns, not written for the grace period, removed."""
        from .models import uploads as uploads_model

        candidates = await asyncio.to_thread(self.list_old, now - grace_seconds)
        owned = await db.read(uploads_model.select_unfinished_ids, candidates)
        leftovers = [public_id for public_id in candidates if public_id not in owned]
        if leftovers:
            await asyncio.to_thread(self._remove_sync, leftovers)
        return len(leftovers)

    def _remove_sync(self, public_ids: list[str]) -> None:
        for public_id in public_ids:
            try:
                self.path_of(public_id).unlink()
            except FileNotFoundError:
                pass

    def list_old(self, older_than: float) -> list[str]:
        """Ids of partial files not written since `older_than` (epoch seconds)."""
        found = []
        for entry in os.scandir(self.directory):
            stem, dot, ext = entry.name.partition(".")
            if ext != "part" or not _NAME.fullmatch(stem):
                continue
            try:
                if entry.stat().st_mtime < older_than:
                    found.append(stem)
            except FileNotFoundError:
                continue
        return found
