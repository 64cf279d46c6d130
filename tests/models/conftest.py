"""A migrated database in a temp dir, without the app around it. Model
functions are plain functions of a connection: the tests run them through
db.read and db.write, as the app does."""
from __future__ import annotations

import pytest

from server.db import Database
from server.models import users as users_model
from tests.conftest import both_engines

engine = both_engines  # every model test runs on SQLite and on PostgreSQL


@pytest.fixture
async def db(tmp_path, engine, request):
    if engine == "postgresql":
        from server.pg_dialect import POSTGRES

        database = Database(request.getfixturevalue("postgres_url"), POSTGRES)
    else:
        database = Database(tmp_path / "cloudbuffer.sqlite3")
    await database.open()
    yield database
    await database.close()


async def add_user(db, username: str = "alice"):
    return await db.write(users_model.insert_user, username, "$argon2id$not-a-real-hash")


def count_rows(conn, table: str) -> int:
    return conn.value(f"SELECT COUNT(*) FROM {table}")
