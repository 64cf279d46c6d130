"""The registry create_app builds: every service there from the start, none
hung on the app itself."""
from __future__ import annotations

import dataclasses

from quart import Quart

from server import create_app
from server.config import Settings
from server.services import EXTENSION, Services, services

SERVICE_NAMES = {field.name for field in dataclasses.fields(Services)}


async def test_create_app_builds_every_service_once(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "MAX_FILES": 3})
    registry = app.extensions[EXTENSION]
    assert services(app) is registry
    assert isinstance(registry.settings, Settings) and registry.settings.max_files == 3
    # Nothing is left to be made on first use (the old lazy app.background_tasks_).
    assert all(getattr(registry, name) is not None for name in SERVICE_NAMES)
    assert registry.keep_alive.services is registry
    async with app.app_context():
        assert services() is registry


async def test_no_service_is_an_attribute_of_the_app(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    plain = Quart(__name__)  # Quart's own attributes (it has a background_tasks set of its own)
    async with app.test_app():
        left_on_app = {name for name in SERVICE_NAMES | {"live_keep_alive", "background_tasks_"}
                       if hasattr(app, name) and not hasattr(plain, name)}
    assert left_on_app == set()


async def test_background_tasks_run_while_serving_and_are_gone_after(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    registry = services(app)
    async with app.test_app():
        [sweeper] = registry.background_tasks
        assert not sweeper.done()
    assert registry.background_tasks == [] and sweeper.done()
    assert registry.shutting_down.is_set()
