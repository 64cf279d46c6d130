"""Shared fixtures: an app on a temp data dir, its test client, users."""
from __future__ import annotations

import pytest

from server import create_app
from tests.redis_server import redis_server  # noqa: F401  (fixture)

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(tmp_path):
    """Overrides for create_app; tests may change them before `app` is built."""
    return {"DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
async def app(settings):
    app = create_app(settings)
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


async def make_token(client, name: str = "script") -> str:
    response = await client.post("/account/tokens", json={"name": name})
    assert response.status_code == 201
    return (await response.get_json())["token"]
