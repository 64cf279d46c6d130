"""The bytes of unfinished resumable uploads: DATA_DIR/uploads/<id>.part.

Kept apart from storage.py's temp files (tmp/, removed when their process
dies or goes idle) because a resumable upload outlives its requests and its
process. The small interface here is all server/resumable.py uses, so
another place for partial bytes needs only another class with these methods.

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

_NAME = re.compile(r"[0-9a-f]{32}")


class PartialBusy(Exception):
    """Another request holds this upload."""


class PartialMissing(Exception):
    """The row says the upload exists but its bytes are gone."""


class PartialFile:
    """An open partial file, locked for this request. Blocking calls: the
    caller runs them on a thread (storage.run_bulk or asyncio.to_thread)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    def cut_to(self, offset: int) -> None:
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def write(self, data: bytes | bytearray) -> None:
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

    def sync(self) -> None:
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

    def close(self) -> None:
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

    async def create(self, public_id: str) -> None:
        await asyncio.to_thread(lambda: os.close(create_private_file(self.path_of(public_id))))

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

    async def remove(self, public_ids: list[str]) -> None:
        if public_ids:
            await asyncio.to_thread(self._remove_sync, public_ids)

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
