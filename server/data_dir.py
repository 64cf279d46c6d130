"""The data dir: the database, uploaded files, temp files and the secret key,
all readable by the server's own user only.

Everything in it is created owner-only whatever the process umask is:
directories 0700, files 0600 (create_private_file; SQLite gives its WAL,
SHM and journal files the mode of the database file, which is created here
first). A data dir left by an older version (0755 directories, 0644 files)
is tightened at start-up, with one log line saying what changed.
"""
from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from .config import ConfigError

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
_OWNER_ONLY = 0o700  # what tightening keeps of a mode: the owner's bits (an executable stays one)
SUBDIRS = ("files", "tmp", "uploads")


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data dir and its folders owner-only; tighten what is there."""
    try:
        for path in (data_dir, *(data_dir / name for name in SUBDIRS)):
            path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"CLOUDBUFFER_DATA_DIR={str(data_dir)!r} cannot be created: {error.strerror}") from None
    directories, files, refused = tighten(data_dir)
    if directories or files or refused:
        log.warning("data dir %s was open to other local users: made %d directories 0700 and %d files 0600%s",
                    data_dir, directories, files,
                    f"; {refused} could not be changed (not owned by this user?)" if refused else "")


def tighten(data_dir: Path) -> tuple[int, int, int]:
    """Take group and other permissions off everything under `data_dir` (it
    included); symbolic links are left alone, not followed. Returns how many
    directories and files were changed, and how many could not be."""
    counts = [0, 0, 0]

    def clear(path: str, is_dir: bool) -> None:
        try:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode & 0o077:
                os.chmod(path, mode & _OWNER_ONLY, follow_symlinks=False)
                counts[0 if is_dir else 1] += 1
        except FileNotFoundError:
            pass  # removed meanwhile (a finished upload's temp file)
        except OSError:
            counts[2] += 1

    clear(str(data_dir), True)
    for root, dirs, names in os.walk(data_dir):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                clear(os.path.join(root, name), True)
        for name in names:
            if not os.path.islink(os.path.join(root, name)):
                clear(os.path.join(root, name), False)
    return counts[0], counts[1], counts[2]


def create_private_file(path: Path | str, exclusive: bool = True) -> int:
    """Open `path` for writing as a new owner-only file; a file descriptor.
    `exclusive=False` also opens an existing one (the database file)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, FILE_MODE)
    if not exclusive:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & _OWNER_ONLY)
    return fd


def load_or_create_secret_key(data_dir: Path) -> str:
    """Keep one generated key in the data dir so sessions survive restarts."""
    path = data_dir / "secret_key"
    if not path.exists():
        # Written aside then hard-linked so that two workers starting at once
        # agree on one key and neither can read a half-written file.
        tmp = data_dir / f"secret_key.{secrets.token_hex(8)}"
        with os.fdopen(create_private_file(tmp), "w") as handle:
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise ConfigError(f"{path} is too short to be a secret key; delete it to generate a new one")
    return key
