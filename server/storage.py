"""Files on disk: streamed, size-limited, atomic writes and safe names.

An upload goes to DATA_DIR/tmp/<pid>-<random>.part, is fsynced and renamed into
DATA_DIR/files/<random> — only then may the caller commit the DB row. A refused
or broken upload removes its temp file; the pid in the name lets the sweeper
remove the leftovers of a process that was killed mid-upload.
"""
from __future__ import annotations

import asyncio
import mimetypes
import os
import secrets
import unicodedata
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Callable
from urllib.parse import quote

from .errors import APIError

WRITE_BATCH = 1024 * 1024  # bytes gathered before one write() in a thread
MAX_FILENAME_CHARS = 200


def sanitize_filename(name: str) -> str:
    """The user's filename as harmless metadata: no directories, control or
    separator characters, no leading dots, bounded length. Empty if nothing
    usable is left (the caller decides whether that is an error)."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in '<>:"|?*')
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266 header: an ASCII fallback plus RFC 8187 filename* in UTF-8."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in fallback).strip()
    fallback = fallback or "download"
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def guess_mime(filename: str, declared: str | None = None) -> str:
    """A type for display and the download; never trusted to render (downloads
    are always attachments with nosniff and a sandbox CSP)."""
    if declared and "/" in declared and declared.split(";")[0].strip() not in ("application/octet-stream", ""):
        return declared.split(";")[0].strip().lower()
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


async def iter_body(body: AsyncIterable[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk; a client that goes quiet for
    idle_seconds is dropped rather than holding a temp file open forever."""
    iterator = body.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), timeout=idle_seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise APIError(408, "upload_timeout", f"The upload stalled for {idle_seconds:g} s and was dropped.") from None
        if chunk:
            yield chunk


class Storage:
    def __init__(self, data_dir: Path) -> None:
        self.files_dir = data_dir / "files"
        self.tmp_dir = data_dir / "tmp"

    def path_of(self, stored_name: str) -> Path:
        return self.files_dir / stored_name

    def new_upload(self, limit: int, too_large: Callable[[], APIError]) -> "Upload":
        return Upload(self, limit, too_large)

    async def remove(self, stored_names: list[str]) -> None:
        if stored_names:
            await asyncio.to_thread(self._remove_sync, stored_names)

    def _remove_sync(self, stored_names: list[str]) -> None:
        for name in stored_names:
            try:
                (self.files_dir / name).unlink()
            except FileNotFoundError:
                pass


class Upload:
    """One file being received. Use as `async with`: leaving the block without
    commit() (an error, a cancelled request) removes the temp file."""

    def __init__(self, storage: Storage, limit: int, too_large: Callable[[], APIError]) -> None:
        self._storage = storage
        self._limit = limit
        self._too_large = too_large
        self._buffer = bytearray()
        self._file = None
        self.size = 0
        self.tmp_path = storage.tmp_dir / f"{os.getpid()}-{secrets.token_hex(16)}.part"
        self.stored_name: str | None = None

    async def __aenter__(self) -> "Upload":
        if self._file is None:  # re-entering an upload handed over by the multipart parser
            self._file = await asyncio.to_thread(open, self.tmp_path, "xb")
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self.stored_name is None:
            await asyncio.to_thread(self._discard_sync)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            raise self._too_large()
        self._buffer += data
        if len(self._buffer) >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(self._file.write, data)

    async def commit(self) -> str:
        """fsync and move into place; returns the generated stored name. The
        caller commits the DB row next (and unlinks the file if that fails)."""
        await self._flush()
        stored_name = secrets.token_hex(16)
        await asyncio.to_thread(self._commit_sync, self._storage.path_of(stored_name))
        self.stored_name = stored_name
        return stored_name

    def _commit_sync(self, final_path: Path) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.rename(self.tmp_path, final_path)
        # The rename is only durable once the directory entry is on disk too.
        dir_fd = os.open(final_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _discard_sync(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass
