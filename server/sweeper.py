"""Deletes expired items, share links, files and resumable uploads, and reconciles the disk.

Runs at start-up and then every SWEEP_SECONDS, in batches so a big backlog
never holds the write lock for long. Every read already filters on expiry, so
the sweeper only reclaims space; being late never exposes anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from . import resumable
from .db import Database, DatabaseUnavailable
from .models import files as files_model
from .models import instance as instance_model
from .models import uploads as uploads_model
from .partials import PartialStore
from .storage import Storage, StorageUnavailable

log = logging.getLogger(__name__)

BATCH = 500
ORPHAN_GRACE_SECONDS = 600  # a file renamed into place whose row is still being committed


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


async def sweep_once(db: Database, storage: Storage, idle_seconds: float, now: float | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    rows = files = 0
    while True:
        deleted, names = await db.write(files_model.delete_expired_batch, now, BATCH)
        await storage.remove(names)
        rows += deleted
        files += len(names)
        if deleted < BATCH:
            break
        await asyncio.sleep(0)  # let requests at the write lock in between batches

    stale = await storage.sweep_temporaries(idle_seconds, now)
    present, candidates = await storage.scan(now, ORPHAN_GRACE_SECONDS)
    known = await db.read(files_model.select_stored_names, candidates)
    # An unfinished resumable upload's completed object waits for its
    # finish to be retried (resumable._LinkedUpload): not an orphan.
    known |= await db.read(uploads_model.select_unfinished_stored_names, [n for n in candidates if n not in known])
    orphans = [name for name in candidates if name not in known]
    await storage.remove(orphans)
    missing = await _delete_rows_without_files(db, present, now)
    # Unfinished resumable uploads: in the bucket with object storage
    # (server/s3_partials.py), else this host's own DATA_DIR/uploads.
    if storage.local:
        store = PartialStore(storage.data_dir / "uploads")
    else:
        from .s3_partials import S3PartialStore

        store = S3PartialStore(storage, db)
    uploads = await resumable.sweep(db, store, now)
    result = {"rows": rows, "files": files, "temp_files": stale, "orphans": len(orphans),
              "missing_files": missing, **uploads}
    if any(result.values()):
        log.info("sweep: %s", result)
    return result


@contextlib.asynccontextmanager
async def _sweepers_turn(db: Database):
    """Whether this process sweeps now: always on a SQLite file (one host);
    on a database that hosts share, only the one holding its advisory lock,
    which PostgreSQL frees by itself if that host dies."""
    if not db.shared:
        yield True
        return
    mine = await db.write(instance_model.try_lock, instance_model.SWEEPER_LOCK)
    try:
        yield mine
    finally:
        if mine:
            await db.write(instance_model.unlock, instance_model.SWEEPER_LOCK)


async def run_sweeper(db: Database, storage: Storage, interval: float, idle_seconds: float) -> None:
    while True:
        try:
            async with _sweepers_turn(db) as mine:
                if mine:
                    await sweep_once(db, storage, idle_seconds)
        except asyncio.CancelledError:
            raise
        except (DatabaseUnavailable, StorageUnavailable) as error:
            log.warning("sweep skipped, retrying at the next interval: %s", error)
        except Exception:
            log.exception("sweep failed; retrying at the next interval")
        await asyncio.sleep(interval)
