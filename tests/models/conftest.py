"""A migrated database in a temp dir, without the app around it."""
from __future__ import annotations

import pytest

from server.db import Database
from server.models import users as users_model


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "cloudbuffer.sqlite3")
    await database.open()
    yield database
    await database.close()


async def add_user(db, username: str = "alice"):
    async with db.transaction() as conn:
        return await users_model.insert_user(conn, username, "$argon2id$not-a-real-hash")
