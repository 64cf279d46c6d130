"""The start-up check that this host may join the others on a shared database.

A fingerprint, not the key: HMAC-SHA256 of a fixed label under the key, so
the database (and its backups) never hold anything that signs a cookie."""
from __future__ import annotations

import hashlib
import hmac

from .config import ConfigError
from .db import Database, DatabaseUnavailable, database_for
from .models import instance as instance_model

_LABEL = b"cloudbuffer secret key fingerprint v1"


def key_fingerprint(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).hexdigest()


async def check_same_secret_key(db: Database, secret_key: str) -> None:
    """Refuse to start (ConfigError) when the hosts already using this
    database sign with another key."""
    if not db.shared:
        return  # a SQLite file is one host's
    mine = key_fingerprint(secret_key)
    recorded = await db.write(instance_model.claim_value, instance_model.KEY_FINGERPRINT, mine)
    if not hmac.compare_digest(recorded, mine):
        raise ConfigError(
            "CLOUDBUFFER_SECRET_KEY differs from the key of the other hosts that use this database "
            "(CLOUDBUFFER_DATABASE_URL): every host must have the same CLOUDBUFFER_SECRET_KEY, or their "
            "session cookies and share links would not work on each other. Set it to the others' key; "
            "this host does not start until then (docs/operations.md, Scale out).")


async def check_database(settings, secret_key: str) -> None:
    """Before any worker starts (serving.run): the database is reachable,
    migrated, and shares this host's key, and the file storage is usable
    (its bucket made if missing). Each failure is one ConfigError naming
    what to fix."""
    from .object_storage import StorageStartError
    from .storage import storage_for

    db = database_for(settings)
    try:
        await db.open()
        await check_same_secret_key(db, secret_key)
    except DatabaseUnavailable as error:
        raise ConfigError(f"cannot use the database (CLOUDBUFFER_DATABASE_URL): {error}") from None
    finally:
        await db.close()
    storage = storage_for(settings)
    try:
        await storage.start()
    except StorageStartError as error:
        raise ConfigError(f"cannot use the file storage (CLOUDBUFFER_STORAGE_URL): {error}") from None
    finally:
        await storage.stop()
