"""Files on disk: streamed, size-limited, atomic writes and safe names.

An upload goes to DATA_DIR/tmp/<pid>-<random>.part, is fsynced and renamed into
DATA_DIR/files/<random> — only then may the caller commit the DB row. A refused
or broken upload removes its temp file; the pid in the name lets the sweeper
remove the leftovers of a process that was killed mid-upload.

Storage (this files dir) is one of two backends behind one interface; the
other is object_storage.S3Storage (CLOUDBUFFER_STORAGE_URL=s3://…), and
`storage_for(settings)` picks. Both have: `new_upload(limit, too_large)`
(an upload to `async with`, `write`, `commit` → stored name), `remove`,
`check_free`, `text_preview`, `start`/`stop`, and for the sweeper `scan`
and `sweep_temporaries`. `local` tells downloads.py whether to send a path
(`path_of`) or the object store's streamed answer (`object_response`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import mimetypes
import os
import re
import secrets
import threading
import unicodedata
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Callable
from urllib.parse import quote

from quart import has_app_context, has_request_context, request

from .data_dir import create_private_file
from .errors import APIError
from .services import services

WRITE_BATCH = 1024 * 1024  # bytes gathered before one write() in a thread
WRITEBACK_EVERY = 16 * 1024 * 1024  # bytes written before their writeback is started
MAX_FILENAME_CHARS = 200
BULK_THREADS = 4  # uploads writing at the same moment; more wait their turn


def sanitize_filename(name: str) -> str:
    """The user's filename as harmless metadata: no directories, control or
    separator characters, no leading dots, bounded length. Empty if nothing
    usable is left (the caller decides whether that is an error).

    Idempotent: the steps are repeated until none changes anything, as each
    can undo another's work (removing a character can leave dots in front
    or a name that is no longer NFC, ". .." loses its space only after its
    first dot, cutting a long name can leave a space at its end)."""
    for _ in range(_MAX_PASSES):
        cleaned = _sanitized_once(name)
        if cleaned == name:
            return cleaned
        name = cleaned
    return ""  # never seen: a name that does not settle is no name


_MAX_PASSES = 8


def _sanitized_once(name: str) -> str:
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
    """RFC 6266 header: an ASCII fallback plus RFC 8187 filename* in UTF-8.

    The fallback is what curl -OJ and other old clients write to disk, so it
    is sanitized again after folding to ASCII: NFKD turns fullwidth
    "．．／．bashrc" into "../.bashrc". A name whose start folds away
    ("日本語.txt" → ".txt") becomes "download.txt" rather than a dotfile."""
    folded = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    folded = "".join("_" if ch in '"\\%;' else ch for ch in folded).lstrip()  # quoted-string safe
    if folded.startswith("."):
        folded = "download" + folded
    fallback = sanitize_filename(folded) or "download"
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


# RFC 9110 §8.3.1 and §5.6: type "/" subtype *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] ).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED_STRING = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_MEDIA_TYPE = re.compile(
    rf"({_TOKEN})/({_TOKEN})(?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED_STRING}))?)*")
MAX_MIME_CHARS = 255
OCTET_STREAM = "application/octet-stream"


def media_type(value: str | None) -> str | None:
    """The lowercased `type/subtype` of `value` if all of it is a valid media
    type (RFC 9110, parameters included), else None. A type that is not is
    no type at all: stored, `a/b\\x0bc` made every download of the file
    fail (h11 refuses it in a header), and ESC or DEL reached the header."""
    if not value or len(value) > MAX_MIME_CHARS:
        return None
    match = _MEDIA_TYPE.fullmatch(value.strip(" \t"))
    return f"{match[1]}/{match[2]}".lower() if match else None


def guess_mime(filename: str, declared: str | None = None) -> str:
    """A type for display and the download; never trusted to render (downloads
    are always attachments with nosniff and a sandbox CSP). A declared type
    that is not a valid media type is application/octet-stream; none, or
    octet-stream itself, is guessed from the name."""
    if declared and declared.strip(" \t"):
        declared_type = media_type(declared)
        if declared_type is None:
            return OCTET_STREAM
        if declared_type != OCTET_STREAM:
            return declared_type
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return media_type(guessed) or OCTET_STREAM


def served_mime(stored: str | None) -> str:
    """A stored type as it may go into a header or an answer: rows written
    before types were checked (guess_mime) may hold anything."""
    if stored and len(stored) <= MAX_MIME_CHARS and _MEDIA_TYPE.fullmatch(stored):
        return stored
    return OCTET_STREAM


async def iter_body(body: AsyncIterable[bytes], idle_seconds: float,
                    min_rate: float | None = None) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk, with two guards against clients that
    hold a connection and a temp file open without really uploading: one
    that goes quiet for idle_seconds, and one that trickles (a byte every
    10 s is never quiet for a minute). In every window of idle_seconds the
    client must deliver min_rate × idle_seconds bytes, or finish.
    min_rate defaults to CLOUDBUFFER_UPLOAD_MIN_RATE."""
    if min_rate is None:
        min_rate = services().settings.upload_min_rate if has_app_context() else 0
    needed = min_rate * idle_seconds
    loop = asyncio.get_running_loop()
    iterator = body.__aiter__()
    window_start = last_heard = loop.time()
    window_bytes = 0
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            remaining = min(window_start, last_heard) + idle_seconds - loop.time()
            if remaining > 0:
                await asyncio.wait({pending}, timeout=remaining)
            if pending.done():
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                if chunk:
                    window_bytes += len(chunk)
                    yield chunk
                    last_heard = loop.time()  # the consumer's own time (a slow disk) is not the client's
            now = loop.time()
            if now - last_heard >= idle_seconds:
                raise APIError(408, "upload_timeout",
                               f"The upload stalled for {idle_seconds:g} s and was dropped.")
            if now - window_start >= idle_seconds:
                if window_bytes < needed:
                    raise APIError(408, "upload_too_slow",
                                   f"The upload was slower than {min_rate:g} bytes/s and was dropped.")
                window_start, window_bytes = now, 0
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


class StorageUnavailable(APIError):
    """The object store cannot be reached or refused (object_storage.py): a
    503, nothing was stored, the client may try again."""

    def __init__(self, action: str) -> None:
        super().__init__(503, "storage_unavailable",
                         f"The server cannot reach its file storage right now ({action}). Nothing was stored; "
                         "please try again in a few seconds.", {"Retry-After": "5"})


def disk_full_error() -> APIError:
    return APIError(507, "insufficient_storage",
                    "The server is running low on disk space and is not accepting uploads right now. "
                    "Nothing was stored; please try again later.")


def _lower_thread_priority(by: int) -> None:
    # Linux keeps a nice value per thread, so only the pool's own threads
    # yield; raising one's nice value needs no privilege.
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + by, 19))


def _open_private(path: Path):
    return os.fdopen(create_private_file(path), "wb")


def storage_for(settings):
    """The file storage the settings name: the object store of STORAGE_URL,
    or by default the files dir in DATA_DIR."""
    if settings.storage_url:
        from .object_storage import S3Storage  # aiobotocore is imported only by servers that use it

        return S3Storage(settings.storage_url, settings.s3_endpoint, settings.data_dir, settings.min_free_bytes)
    return Storage(settings.data_dir, settings.min_free_bytes, settings.upload_nice)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_temp_files(tmp_dir: Path, idle_seconds: float, now: float) -> list[Path]:
    """Temp files of a dead process, or idle far longer than any live upload."""
    stale = []
    for path in tmp_dir.glob("*.part"):
        pid_text = path.name.split("-", 1)[0]
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))
        if dead or now - mtime > 2 * idle_seconds:
            stale.append(path)
    return stale


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _scan_files(files_dir: Path, now: float, grace_seconds: float) -> tuple[set[str], list[str]]:
    """Every stored file's name, and those old enough to judge as orphans."""
    names: set[str] = set()
    old = []
    for entry in os.scandir(files_dir):
        try:
            if entry.is_file():
                names.add(entry.name)
                if now - entry.stat().st_mtime > grace_seconds:
                    old.append(entry.name)
        except FileNotFoundError:
            continue
    return names, old


class Storage:
    local = True

    def __init__(self, data_dir: Path, min_free_bytes: int = 0, upload_nice: int = 0) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.tmp_dir = data_dir / "tmp"
        # Uploads stop while the data dir's disk has less than this free, so
        # SQLite (its WAL, its journal) always has room to commit or roll back.
        self.min_free_bytes = min_free_bytes
        self.upload_nice = upload_nice
        self._bulk: concurrent.futures.ThreadPoolExecutor | None = None

    async def run_bulk(self, function: Callable, *args):
        """Run a blocking call that moves upload bytes (writing a batch, the
        final fsync) on a thread running `upload_nice` below the event loop.
        Copying a GiB into the page cache is seconds of CPU; at the loop's
        priority it takes turns with every live socket's push on a busy core,
        below it it uses what they leave (#6 in docs/benchmarks.md)."""
        if self._bulk is None:
            self._bulk = concurrent.futures.ThreadPoolExecutor(
                BULK_THREADS, thread_name_prefix="cloudbuffer-upload",
                initializer=_lower_thread_priority, initargs=(self.upload_nice,))
        return await asyncio.get_running_loop().run_in_executor(self._bulk, function, *args)

    async def start(self) -> None:
        pass  # the dirs exist (data_dir.ensure_data_dir)

    async def stop(self) -> None:
        self.close()

    async def text_preview(self, stored_name: str, limit: int) -> tuple[str, bool] | None:
        from .previews import text_preview

        return await text_preview(self.path_of(stored_name), limit)

    async def scan(self, now: float, grace_seconds: float) -> tuple[set[str], list[str]]:
        return await asyncio.to_thread(_scan_files, self.files_dir, now, grace_seconds)

    async def sweep_temporaries(self, idle_seconds: float, now: float) -> int:
        """Remove the temp files of dead processes and of long-idle uploads."""
        stale = await asyncio.to_thread(_stale_temp_files, self.tmp_dir, idle_seconds, now)
        await asyncio.to_thread(_unlink_all, stale)
        return len(stale)

    def close(self) -> None:
        """Let the upload threads end once their work is done (after serving)."""
        if self._bulk is not None:
            self._bulk.shutdown(wait=False)
            self._bulk = None

    def free_bytes(self) -> int:
        stat = os.statvfs(self.files_dir)
        return stat.f_bavail * stat.f_frsize

    async def check_free(self, incoming: int = 0) -> None:
        """507 if writing `incoming` more bytes would cross the free-space floor."""
        if self.min_free_bytes and await asyncio.to_thread(self.free_bytes) - incoming < self.min_free_bytes:
            raise disk_full_error()

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
        self._written = 0  # bytes handed to the OS
        self._started_writeback = 0  # bytes whose writeback was started
        self.size = 0
        self.tmp_path = storage.tmp_dir / f"{os.getpid()}-{secrets.token_hex(16)}.part"
        self.stored_name: str | None = None

    async def __aenter__(self) -> "Upload":
        if self._file is None:  # re-entering an upload handed over by the multipart parser
            # A declared length that would not fit is refused before any byte is read.
            expected = (request.content_length or 0) if has_request_context() else 0
            await self._storage.check_free(min(expected, self._limit))
            self._file = await asyncio.to_thread(_open_private, self.tmp_path)
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self.stored_name is None:
            await asyncio.to_thread(self._discard_sync)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            raise self._too_large()
        if not self._buffer and len(data) >= WRITE_BATCH:
            await self._write_out(data)  # a big piece goes out as it is, not copied into the batch
            return
        self._buffer += data
        if len(self._buffer) >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            # The batch itself is written (no bytes() copy); a new one starts.
            data, self._buffer = self._buffer, bytearray()
            await self._write_out(data)

    async def _write_out(self, data: bytes | bytearray) -> None:
        await self._storage.check_free(len(data))
        await self._storage.run_bulk(self._write_sync, data)

    def _write_sync(self, data: bytes | bytearray) -> None:
        self._file.write(data)
        self._written += len(data)
        if self._written - self._started_writeback >= WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
            # Start writing this stretch to disk now, without waiting for it
            # (on Linux, FADV_DONTNEED starts the writeback). Left to the final
            # fsync, a 1 GiB upload's dirty pages go out all at once and every
            # other writer on the disk -- SQLite's commits too -- stalls for
            # seconds behind them (#6 in docs/benchmarks.md).
            self._file.flush()
            os.posix_fadvise(self._file.fileno(), self._started_writeback,
                             self._written - self._started_writeback, os.POSIX_FADV_DONTNEED)
            self._started_writeback = self._written

    async def commit(self) -> str:
        """fsync and move into place; returns the generated stored name. The
        caller commits the DB row next (and unlinks the file if that fails)."""
        await self._flush()
        stored_name = secrets.token_hex(16)
        await self._storage.run_bulk(self._commit_sync, self._storage.path_of(stored_name))
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
