"""Big files over tus (the server's /file/uploads, docs/api.md): a dropped
connection costs one piece, not the whole file.

`copy` sends a file of RESUMABLE_FROM bytes or more this way. Each piece is
one PATCH; when one fails for the network's sake the upload asks the server
where it stands (HEAD) and goes on from there, RETRIES times in a row at
most. The upload's address is remembered (uploads.json beside the saved
login) under the file's path, size and modification time, so running the
same `copy` again after Ctrl+C or a crash resumes it instead of starting over.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import BinaryIO

import httpx

from .api import Api, raise_for_status, unreachable
from .config import config_path

RESUMABLE_FROM = 64 * 1024 * 1024
PIECE = 8 * 1024 * 1024
RETRIES = 5
TUS = {"Tus-Resumable": "1.0.0"}


def _metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


class Remembered:
    """Upload addresses by file, so a second run resumes the first's upload."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path().parent / "uploads.json"

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    @staticmethod
    def key(server: str, file: Path) -> str:
        stat = file.stat()
        return f"{server}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def put(self, key: str, url: str) -> None:
        self._save({**self._load(), key: url})

    def forget(self, key: str) -> None:
        data = self._load()
        if data.pop(key, None) is not None:
            self._save(data)


def _offset(api: Api, url: str) -> int | None:
    """The server's offset, or None if it knows no such upload any more."""
    response = api.http.head(url, headers=TUS)
    if response.status_code == 404:
        return None
    raise_for_status(response)
    return int(response.headers["Upload-Offset"])


def _create(api: Api, size: int, name: str, mime: str) -> str:
    response = api.http.post("/file/uploads", headers={
        **TUS, "Upload-Length": str(size), "Upload-Metadata": _metadata(filename=name, filetype=mime)})
    raise_for_status(response)
    return response.headers["Location"]


def _bar(size: int, label: str):
    """A progress callback (bytes on the server so far), drawn when stderr is a terminal."""
    import sys

    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr,
               leave=False, dynamic_ncols=True)

    def progress(offset: int) -> None:
        bar.update(offset - bar.n)

    return progress, bar.close


def upload(api: Api, file: BinaryIO, path: Path, size: int, name: str, mime: str) -> dict:
    """Send `file` (`size` bytes) as a resumable upload into the buffer; the item."""
    progress, close = _bar(size, name)
    try:
        return _upload(api, file, path, size, name, mime, progress)
    finally:
        close()


def _upload(api: Api, file: BinaryIO, path: Path, size: int, name: str, mime: str, progress) -> dict:
    remembered = Remembered()
    key = Remembered.key(api.url, path)
    url = remembered.get(key)
    offset = None
    try:
        if url is not None:
            offset = _offset(api, url)
        if offset is None:
            url, offset = _create(api, size, name, mime), 0
            remembered.put(key, url)
        if progress is not None:
            progress(offset)
        failures = 0
        while offset < size or size == 0:
            file.seek(offset)
            piece = file.read(min(PIECE, size - offset))
            try:
                response = api.http.patch(url, content=piece, headers={
                    **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            except httpx.TransportError as error:
                failures += 1
                if failures > RETRIES:
                    raise unreachable(api.url, error) from None
                time.sleep(min(2 ** failures, 30))
                offset = _offset(api, url) or 0
                continue
            if response.status_code == 409:  # another PATCH still held it, or the offset moved: ask
                failures += 1
                if failures > RETRIES:
                    raise_for_status(response)
                time.sleep(1)
                offset = _offset(api, url) or 0
                continue
            raise_for_status(response)
            failures = 0
            offset = int(response.headers["Upload-Offset"])
            if progress is not None:
                progress(offset)
            if size == 0:
                break
    except httpx.TransportError as error:
        raise unreachable(api.url, error) from None
    state = api.json("GET", url)
    remembered.forget(key)
    return state.get("item") or {}
