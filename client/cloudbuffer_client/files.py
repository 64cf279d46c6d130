"""Saving a downloaded item: the server's filename is untrusted, so it is
cleaned again here, and a file lands in place only when it is whole."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
from email.message import Message
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote

from .errors import REFUSED, USAGE, ClientError

FALLBACK_NAME = "download"
MAX_NAME_BYTES = 200


def filename_from_disposition(header: str | None) -> str | None:
    """The name in a Content-Disposition header, preferring filename*=UTF-8''…
    (RFC 6266) to the ASCII fallback."""
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*([\w-]+)'[^']*'([^;\s]+)", header, re.IGNORECASE)
    if extended:
        try:
            return unquote(extended.group(2), encoding=extended.group(1), errors="replace")
        except LookupError:  # an unknown charset: fall back to the plain name
            pass
    message = Message()
    message["Content-Disposition"] = header
    return message.get_filename()


def safe_filename(name: str | None) -> str:
    """A plain name for the current directory: no directories (either slash),
    no control characters, no leading dots, never empty, never too long."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    name = name.rstrip(". ")
    while len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if dot and len(ext) < 16 and stem else name[:-1]
    return name or FALLBACK_NAME


def save_stream(chunks: Iterable[bytes], target: Path, force: bool) -> int:
    """Write to a temp file beside `target`, then put it in place: replacing
    only with `force`, else refusing if anything (even a dangling link) is there."""
    target = Path(target)
    directory = target.parent
    if not force and os.path.lexists(target):
        raise ClientError(REFUSED, f"{target} exists; use --force to replace it, or -o PATH")
    try:
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".cloudbuffer-", suffix=".part")
    except OSError as error:
        raise ClientError(USAGE, f"cannot write in {directory} ({error.strerror}); choose another place with -o") from None
    size = 0
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                size += len(chunk)
        os.chmod(temp_name, 0o666 & ~_umask())
        if force:
            os.replace(temp_name, target)
        else:
            try:
                os.link(temp_name, target)  # fails if the name appeared meanwhile
            except FileExistsError:
                raise ClientError(REFUSED, f"{target} exists; use --force to replace it, or -o PATH") from None
            os.unlink(temp_name)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise ClientError(USAGE, f"cannot write {target} ({error.strerror}); choose another place with -o") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return size


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

