"""`copy`, `paste`, `history` and `get`: the buffer over HTTP, streamed."""
from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import quote

from . import ece, resumable, sealed
from .api import Api
from .config import current_login
from .errors import EMPTY, REFUSED, USAGE, ClientError
from .files import filename_from_disposition, safe_filename, save_stream
from .progress import tracked
from .vault import Vault

CHUNK = 256 * 1024
# The server's default CLOUDBUFFER_MAX_TEXT_BYTES: stdin up to this size that
# is valid UTF-8 is sent as text (a server with a lower limit answers 413,
# and the bytes go again as a file).
TEXT_LIMIT = 1024 * 1024
TEXT_FILENAME = "buffer.txt"


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _read_prefix(stream: BinaryIO, limit: int) -> bytes:
    """Up to `limit` + 1 bytes: enough to know whether stdin fits a text item."""
    parts, size = [], 0
    while size <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _post_file(api: Api, chunks, name: str, size: int | None, sealing=None) -> dict:
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    chunks = tracked(chunks, size, name)
    if sealing is not None:
        epoch, ikm = sealing
        item = sealed.seal(ikm, epoch, "file", size, name, mime)
        headers = item.headers("file")
        chunks = ece.encrypt_stream(chunks, item.item_key)
        size = ece.encrypted_size(size)
    else:
        headers = {"X-Data-Type": "file", "X-File-Name": quote(name, safe=""), "Content-Type": mime}
    if size is not None:
        headers["Content-Length"] = str(size)
    return api.json("POST", "/file/buffer", headers=headers, content=chunks)


def _post_text(api: Api, data: bytes, sealing=None) -> dict | None:
    """The item, or None when the server finds the text too large."""
    if sealing is not None:
        epoch, ikm = sealing
        item = sealed.seal(ikm, epoch, "text", len(data))
        headers, data = item.headers("text"), ece.encrypt(data, item.item_key)
    else:
        headers = {"X-Data-Type": "text", "Content-Type": "text/plain; charset=utf-8"}
    try:
        return api.json("POST", "/file/buffer", content=data, headers=headers)
    except ClientError as error:
        if error.exit_code == REFUSED and "large" in error.message.lower():
            return None
        raise


def _spooled(prefix: bytes, stream: BinaryIO) -> tuple[BinaryIO, int]:
    """stdin in a temporary file: an encrypted item's details carry its
    size, which a pipe does not tell before it ends (memory stays bounded)."""
    spool = tempfile.TemporaryFile(prefix="cloudbuffer-")
    spool.write(prefix)
    for chunk in read_chunks(stream):
        spool.write(chunk)
    size = spool.tell()
    spool.seek(0)
    return spool, size


def cmd_copy(args: argparse.Namespace) -> int:
    login = current_login()
    paths = [Path(name) for name in args.files]
    for path in paths:
        if not path.is_file():
            raise ClientError(USAGE, f"{path}: not a readable file; give files, or pipe data in with no FILE")
    with Api.for_login(login) as api:
        sealing = Vault(api).for_write()
        if not paths:
            stdin = sys.stdin.buffer
            prefix = _read_prefix(stdin, TEXT_LIMIT)
            if len(prefix) <= TEXT_LIMIT and args.name is None:
                try:
                    prefix.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    if _post_text(api, prefix, sealing) is not None:
                        return 0
            if sealing is not None:
                spool, size = _spooled(prefix, stdin)
                with spool:
                    _post_file(api, read_chunks(spool), args.name or "stdin", size, sealing)
                return 0

            def stdin_chunks():
                yield prefix
                yield from read_chunks(stdin)

            _post_file(api, stdin_chunks(), args.name or "stdin", None)
            return 0
        for path in paths:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                name = args.name if args.name and len(paths) == 1 else path.name
                if sealing is None and size >= resumable.RESUMABLE_FROM:
                    # Big files go over tus: a dropped connection costs a piece, and a second run resumes.
                    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    resumable.upload(api, file, path, size, name, mime)
                else:
                    _post_file(api, read_chunks(file), name, size, sealing)
    return 0


def open_response(api: Api, headers) -> sealed.Opened:
    """An encrypted item's key and details from a download's headers."""
    vault = Vault(api)
    if not vault.enrolled:
        from .api import ENCRYPTED_ACCOUNT
        raise ClientError(REFUSED, ENCRYPTED_ACCOUNT)
    try:
        return sealed.open_item(headers.get("X-Encrypted-Key", ""), headers.get("X-Encrypted-Meta", ""), vault.ikm)
    except sealed.SealedError as error:
        raise ClientError(REFUSED, f"cannot decrypt this item: {error}") from None


def decrypted(chunks, item_key: bytes):
    try:
        yield from ece.decrypt_stream(chunks, item_key)
    except ece.CiphertextError as error:
        raise ClientError(REFUSED, f"the item's content does not decrypt ({error}); nothing was kept") from None


def _emit(api: Api, path: str, args: argparse.Namespace, not_found: str) -> int:
    with api.stream("GET", path, not_found=not_found) as response:
        if response.status_code == 204:
            raise ClientError(EMPTY, "the buffer is empty")
        if response.headers.get("X-Encrypted") == "aes128gcm":
            item = open_response(api, response.headers)
            kind, name, size = item.kind, item.name if item.kind == "file" else None, item.size
            chunks = tracked(decrypted(response.iter_bytes(CHUNK), item.item_key), size, name or "text")
        else:
            kind = response.headers.get("X-Data-Type", "file")
            name = filename_from_disposition(response.headers.get("Content-Disposition"))
            size = int(response.headers.get("Content-Length") or 0) or None
            chunks = tracked(response.iter_bytes(CHUNK), size, name or "text")
        if args.output:
            target = Path(args.output)
            if target.is_dir():
                target = target / safe_filename(name or TEXT_FILENAME)
        elif args.remote_name:
            target = Path.cwd() / safe_filename(name if kind == "file" else TEXT_FILENAME)
        elif kind == "file" and sys.stdout.isatty():
            raise ClientError(USAGE, f"the buffer holds a file ({name}); save it with -O, or -o PATH, or redirect stdout")
        else:
            out = sys.stdout.buffer
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            return 0
        written = save_stream(chunks, target, force=args.force)
        print(f"saved {target} ({written} bytes)", file=sys.stderr)
    return 0


def cmd_paste(args: argparse.Namespace) -> int:
    with Api.for_login(current_login()) as api:
        return _emit(api, "/file/buffer", args, "the buffer is empty")


def history_items(api: Api) -> list[dict]:
    """The history, encrypted items shown with their decrypted details
    (`filename`, `mime`, the plaintext `size`), or `undecryptable` saying why not."""
    items = api.json("GET", "/file/buffer/items")["items"]
    vault = None
    shown = []
    # Oldest first, so that of two items with one id the later one is the replay.
    for item in reversed(items):
        if item.get("encrypted") == "aes128gcm":
            vault = vault or Vault(api)
            item = _opened_entry(item, vault)
        shown.append(item)
    if vault is not None:
        vault.save_seen()
    return shown[::-1]


def _opened_entry(item: dict, vault: Vault) -> dict:
    entry = {key: value for key, value in item.items() if key not in ("key", "meta")}
    if not vault.enrolled:
        entry["undecryptable"] = "this computer has no key (`cloudbuffer pair`)"
        return entry
    try:
        opened = sealed.open_item(item.get("key", ""), item.get("meta", ""), vault.ikm)
    except sealed.SealedError as error:
        entry["undecryptable"] = str(error)
        return entry
    if vault.replayed(opened.id, item.get("seq")):
        entry["replayed"] = True
    entry["type"] = opened.kind
    if opened.size is not None:
        entry["size"] = opened.size
    if opened.kind == "file":
        entry["filename"], entry["mime"] = opened.name, opened.mime
    return entry


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return f"{seconds} s ago"


SEARCHED_TEXT_BYTES = 1024 * 1024  # a longer text is searched by its first MiB


def _item_text(api: Api, item: dict) -> str:
    """A text item's first MiB, decrypted here when it is encrypted."""
    with api.stream("GET", f"/file/buffer/items/{item['id']}", not_found="the item has expired") as response:
        chunks = response.iter_bytes(CHUNK)
        if response.headers.get("X-Encrypted") == "aes128gcm":
            chunks = decrypted(chunks, open_response(api, response.headers).item_key)
        data = bytearray()
        for chunk in chunks:
            data += chunk
            if len(data) >= SEARCHED_TEXT_BYTES:
                break
    return data[:SEARCHED_TEXT_BYTES].decode("utf-8", errors="replace")


def _matches(api: Api, item: dict, wanted: str) -> bool:
    if wanted in (item.get("filename") or "").casefold():
        return True
    if item.get("type") != "text" or "undecryptable" in item:
        return False
    try:
        return wanted in _item_text(api, item).casefold()
    except ClientError as error:
        if error.code == EMPTY:  # expired between the list and the fetch
            return False
        raise


def searched(api: Api, items: list[dict], text: str) -> list[tuple[int, dict]]:
    """(history number, item) of the items holding `text`. The server
    searches a plaintext account; an encrypted one it cannot read, so its
    items are decrypted and searched here, and nothing of the search is
    sent (docs/e2e.md)."""
    numbered = list(enumerate(items, 1))
    if not any(item.get("encrypted") == "aes128gcm" for item in items):
        found = {item["id"] for item in api.json("GET", "/file/buffer/items", params={"q": text})["items"]}
        return [(number, item) for number, item in numbered if item["id"] in found]
    wanted = text.strip().casefold()
    return [(number, item) for number, item in numbered if _matches(api, item, wanted)]


def cmd_history(args: argparse.Namespace) -> int:
    with Api.for_login(current_login()) as api:
        items = history_items(api)
        numbered = list(enumerate(items, 1))
        if args.search is not None:
            if not args.search.strip():
                raise ClientError(USAGE, "--search needs some text to look for")
            numbered = searched(api, items, args.search)
            items = [item for _, item in numbered]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0 if items else EMPTY
    if not items:
        raise ClientError(EMPTY, "nothing in the history holds that" if args.search is not None
                          else "the history is empty")
    now = time.time()
    for number, item in numbered:
        what = item.get("filename") or item.get("mime") or ""
        if "undecryptable" in item:
            what = f"(encrypted; cannot decrypt: {item['undecryptable']})"
        elif item.get("replayed"):
            what = f"{what}  (REPLAYED: an older item shown again under a new number)"
        print(f"{number:>3}  {item['type']:<4}  {human_size(item['size']):>10}  {human_age(now - item['created_at']):>10}"
              f"  {item.get('from') or '?'}  {what}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    if args.number < 1:
        raise ClientError(USAGE, "N counts from 1 (the newest item); see `cloudbuffer history`")
    with Api.for_login(current_login()) as api:
        items = history_items(api)
        if args.number > len(items):
            raise ClientError(EMPTY, f"no item {args.number}: the history has {len(items)}; see `cloudbuffer history`")
        item = items[args.number - 1]
        return _emit(api, f"/file/buffer/items/{item['id']}", args, f"item {args.number} has expired or was deleted")
