"""`cloudbuffer share FILE`: a share link, and its QR code drawn in text."""
from __future__ import annotations

import argparse
import io
import mimetypes
import os
import re
import sys
import time
from pathlib import Path

import qrcode

from . import ece, keys, sealed
from .api import Api
from .config import current_login
from .errors import USAGE, ClientError
from .transfer import read_chunks
from .progress import tracked
from .vault import Vault


class _ChunkReader(io.RawIOBase):
    """A file object over chunks, so httpx's multipart streams it (with the bar)."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return b""
        size = len(self._pending) if size is None or size < 0 else size
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece


UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds from "90", "90s", "10m", "1h", "2d"."""
    match = re.fullmatch(r"\s*(\d+)\s*(s|m|min|h|d)?\s*", text)
    if not match or int(match.group(1)) == 0:
        raise ClientError(USAGE, f"--expires {text!r}: give a duration like 90s, 10m, 1h or 2d")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def qr_text(url: str) -> str:
    code = qrcode.QRCode(border=2)
    code.add_data(url)
    output = io.StringIO()
    code.print_ascii(out=output, invert=True)
    return output.getvalue()


def cmd_share(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ClientError(USAGE, f"{path}: not a readable file; give the file to share")
    params = {"expires_in": parse_duration(args.expires)} if args.expires else {}
    if args.max_downloads is not None:
        if args.max_downloads < 1:
            raise ClientError(USAGE, "--max-downloads: give a number of downloads, 1 or more")
        params["max_downloads"] = args.max_downloads
    if args.burn:
        params["burn"] = "1"
    # A form field, never the query string (which access logs keep).
    fields = {}
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ClientError(USAGE, "--password-stdin: the first line of stdin is empty; give the link's password")
        fields["password"] = password
    login = current_login()
    with open(path, "rb") as file, Api.for_login(login) as api:
        size = os.fstat(file.fileno()).st_size
        chunks = tracked(read_chunks(file), size, path.name)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if Vault(api).for_write() is not None:
            if fields:
                # An encrypted link's body is the raw blob: no form to carry a password in.
                raise ClientError(USAGE, "--password-stdin: an end-to-end encrypted link has no password "
                                         "(its key, in the link after #, is what opens it)")
            # The link gets a key of its own, in the fragment that browsers never send.
            item = sealed.seal(None, None, "file", size, path.name, mime)
            headers = {**item.headers("file"), "Content-Length": str(ece.encrypted_size(size))}
            share = api.json("POST", "/file/load", params=params, headers=headers,
                             content=ece.encrypt_stream(chunks, item.item_key))
            url = share["url"] + "#k=" + keys.b64u(item.item_key)
        else:
            share = api.json("POST", "/file/load", params=params, data=fields,
                             files={"file": (path.name, _ChunkReader(chunks), mime)})
            url = share["url"]
    print(url, flush=True)
    left = max(0, int(share["expires_at"] - time.time()))
    limit = share.get("max_downloads")
    extras = "" if limit is None else f", {limit} download{'' if limit == 1 else 's'}"
    if share.get("password"):
        extras += ", with a password"
    print(f"{share.get('filename') or path.name}, {size} bytes"
          f"{' (end-to-end encrypted: the key is in the link after #)' if url != share['url'] else ''}; "
          f"the link works for {left // 3600} h {left % 3600 // 60} min{extras}", file=sys.stderr)
    if not args.no_qr:
        sys.stderr.write(qr_text(url))
    return 0
