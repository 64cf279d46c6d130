"""Deletes expired items, share links, files and resumable uploads, and reconciles the disk.

Runs at start-up and then every SWEEP_SECONDS, in batches so a big backlog
never holds the write lock for long. Every read already filters on expiry, so
the sweeper only reclaims space; being late never exposes anything.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from .db import Database
from . import resumable
from .models import files as files_model
from .partials import PartialStore
from .storage import Storage

log = logging.getLogger(__name__)

BATCH = 500
ORPHAN_GRACE_SECONDS = 600  # a file renamed into place whose row is still being committed


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


def _scan_files(files_dir: Path, now: float) -> tuple[set[str], list[str]]:
    """Every stored file's name, and those old enough to judge as orphans."""
    names: set[str] = set()
    old = []
    for entry in os.scandir(files_dir):
        try:
            if entry.is_file():
                names.add(entry.name)
                if now - entry.stat().st_mtime > ORPHAN_GRACE_SECONDS:
                    old.append(entry.name)
        except FileNotFoundError:
            continue
    return names, old


async def _delete_rows_without_files(db: Database, present: set[str], now: float) -> int:
    """A files row whose file is gone (a disk restored from an older backup,
    a file deleted by hand) would promise a download that cannot happen:
    drop it with its items and shares. A file is renamed into place before
    its row commits, so a row older than the grace period whose file was
    absent when the directory was listed (before these rows were read) is
    really missing, never still arriving."""
    missing: list[int] = []
    after_id = 0
    while True:
        rows = await db.read(files_model.select_file_names_created_before, now - ORPHAN_GRACE_SECONDS, after_id,
                             BATCH)
        missing += [file_id for file_id, name in rows if name not in present]
        if len(rows) < BATCH:
            break
        after_id = rows[-1][0]
    for start in range(0, len(missing), BATCH):
        await db.write(files_model.delete_files_by_id, missing[start : start + BATCH])
    if missing:
        log.warning("sweep: %d file row(s) had no file on disk and were removed", len(missing))
    return len(missing)


async def sweep_once(db: Database, storage: Storage, idle_seconds: float) -> dict[str, int]:
    now = time.time()
    rows = files = 0
    while True:
        deleted, names = await db.write(files_model.delete_expired_batch, now, BATCH)
        await storage.remove(names)
        rows += deleted
        files += len(names)
        if deleted < BATCH:
            break
        await asyncio.sleep(0)  # let requests at the write lock in between batches

    stale = await asyncio.to_thread(_stale_temp_files, storage.tmp_dir, idle_seconds, now)
    await asyncio.to_thread(_unlink_all, stale)

    present, candidates = await asyncio.to_thread(_scan_files, storage.files_dir, now)
    known = await db.read(files_model.select_stored_names, candidates)
    orphans = [name for name in candidates if name not in known]
    await storage.remove(orphans)
    missing = await _delete_rows_without_files(db, present, now)
    uploads = await resumable.sweep(db, PartialStore(storage.files_dir.parent / "uploads"), now)
    result = {"rows": rows, "files": files, "temp_files": len(stale), "orphans": len(orphans),
              "missing_files": missing, **uploads}
    if any(result.values()):
        log.info("sweep: %s", result)
    return result


async def run_sweeper(db: Database, storage: Storage, interval: float, idle_seconds: float) -> None:
    while True:
        try:
            await sweep_once(db, storage, idle_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; retrying at the next interval")
        await asyncio.sleep(interval)
