"""Shared fixtures: an app on a temp data dir, its test client, users."""
from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import server.auth
from server import create_app
from server.api_schema import check_responses
from tests.pg_server import pg_cluster, pg_server, postgres_url  # noqa: F401  (fixtures)
from tests.redis_server import redis_server  # noqa: F401  (fixture)

PASSWORD = "correct horse battery"

# Still argon2id, but with the smallest costs: the production parameters take
# 0.2-0.4 s per hash on a busy 2-core CI machine, and the suite hashes hundreds
# of passwords. Timing tests use `slow_password_hasher`.
_FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_FAST_DUMMY_HASH = _FAST_HASHER.hash("dummy password for unknown users")


@pytest.fixture(autouse=True)
def fast_password_hasher(monkeypatch):
    monkeypatch.setattr(server.auth, "_hasher", _FAST_HASHER)
    monkeypatch.setattr(server.auth, "_dummy_hash", lambda: _FAST_DUMMY_HASH)


@pytest.fixture
def slow_password_hasher(monkeypatch):
    """A hasher costly enough (tens of ms) to dwarf request overhead, for
    timing tests; the dummy hash is made with it, as in production."""
    hasher = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    monkeypatch.setattr(server.auth, "_hasher", hasher)
    dummy_hash = hasher.hash("dummy password for unknown users")
    monkeypatch.setattr(server.auth, "_dummy_hash", lambda: dummy_hash)


ENGINES = ("sqlite", "postgresql")


@pytest.fixture
def engine() -> str:
    """The SQL engine under the app: SQLite unless a test module (or a
    folder's conftest: tests/models, tests/blueprints) asks for both with
    `engine = both_engines`."""
    return "sqlite"


both_engines = pytest.fixture(params=ENGINES)(lambda request: request.param)


@pytest.fixture
def settings(tmp_path, engine, request):
    """Overrides for create_app; tests may change them before `app` is built."""
    overrides = {"DATA_DIR": str(tmp_path / "data")}
    if engine == "postgresql":
        overrides["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return overrides


@pytest.fixture
async def app(settings):
    app = create_app(settings)
    # Every JSON answer checked against its @responds model (production
    # does not check: server/api_schema.py says why).
    check_responses(app)
    async with app.test_app():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


async def register(client, username: str = "alice", password: str = PASSWORD):
    response = await client.post("/account/register", json={"username": username, "password": password})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return response


@pytest.fixture
async def alice(client):
    """The client, logged in as alice (cookie session)."""
    await register(client, "alice")
    return client


async def make_token(client, name: str = "script", password: str = PASSWORD) -> str:
    response = await client.post("/account/tokens", json={"name": name, "password": password})
    assert response.status_code == 201
    return (await response.get_json())["token"]
