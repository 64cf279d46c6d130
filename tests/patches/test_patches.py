"""server/patches/: with the installed libraries every patch is applied (so a
silent fallback cannot hide), and a patch whose library no longer looks as
checked is left off with one warning line while the server still serves."""
from __future__ import annotations

import asyncio
import logging
import tomllib
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from hypercorn.asyncio import task_group as hypercorn_task_group
from hypercorn.asyncio import tcp_server as hypercorn_tcp_server
from hypercorn.config import Config
from hypercorn.protocol import h2 as h2_protocol
from hypercorn.protocol import h11 as h11_protocol
from hypercorn.protocol import ws_stream
from quart.wrappers.request import Body
from wsproto.extensions import PerMessageDeflate

from server import create_app, patches, serving
from server.config import load_settings
from server.patches import app_queue, request_body, ws_compression, ws_pings
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
# The module-level names the server patches replace, restored after each test.
SWAPPED = ((ws_stream, "PerMessageDeflate"), (h11_protocol, "WSStream"), (h2_protocol, "WSStream"),
           (hypercorn_tcp_server, "TaskGroup"))


@pytest.fixture
def restored(monkeypatch):
    for module, name in SWAPPED:
        monkeypatch.setattr(module, name, getattr(module, name))
    return monkeypatch


def _rewritten(function):
    """`function` as an upgrade might have rewritten it: the same behaviour,
    other source, so the server can still serve with the patch left off."""
    def rewritten(*args, **kwargs):
        return function(*args, **kwargs)
    return rewritten


class _RenamedDeflate(PerMessageDeflate):  # as if Hypercorn built another extension
    pass


# One way per patch to make the library look unlike what the patch was checked against.
BREAKS = {
    "request_body": lambda m: m.setattr(Body, "append", _rewritten(Body.append)),
    "ws_compression": lambda m: m.setattr(ws_stream, "PerMessageDeflate", _RenamedDeflate),
    "ws_pings": lambda m: m.setattr(ws_stream.WSStream, "_accept", _rewritten(ws_stream.WSStream._accept)),
    "app_queue": lambda m: m.setattr(hypercorn_task_group, "_handle", _rewritten(hypercorn_task_group._handle)),
}


def _settings(**overrides):
    return load_settings(environ={}, overrides={"WS_COMPRESSION": False, "DISABLED_PATCHES": (), **overrides})


def test_every_patch_is_applied_with_the_installed_libraries(restored, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="server.patches")
    assert all(patches.apply_server_patches(_settings()).values())
    assert ws_stream.PerMessageDeflate is ws_compression.DeclinedDeflate
    assert h11_protocol.WSStream is h2_protocol.WSStream is ws_pings.SweptPingsWSStream
    assert hypercorn_tcp_server.TaskGroup is app_queue.LightQueueTaskGroup
    app = create_app({"DATA_DIR": tmp_path})
    assert app.request_class is request_body.StreamingRequest
    assert app.asgi_http_class is request_body.BackpressureHTTPConnection
    assert caplog.records == []


def test_every_patch_is_listed_and_checked_against_the_versions_installed_and_pinned():
    assert set(BREAKS) == set(patches.NAMES)
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for patch in (*patches.APP_PATCHES, *patches.SERVER_PATCHES):
        for library, checked in patch.checked_against.items():
            assert version(library) == checked, (patch.name, library)
            assert f"{library}=={checked}" in pins, f"pyproject.toml must pin {library}=={checked} ({patch.name})"


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_patch_whose_library_changed_is_left_off_with_one_warning_line(name, restored, caplog):
    BREAKS[name](restored)
    caplog.set_level(logging.WARNING, logger="server.patches")
    target = type("App", (), {})()
    applied = {**patches.apply_app_patches(target, ()), **patches.apply_server_patches(_settings())}
    assert {patch for patch, on in applied.items() if not on} == {name}
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith(f"patch {name} left off, running as the library ships: ")
    assert "checked against" in line


def test_a_patch_disabled_by_name_is_left_off_without_a_warning(restored, caplog):
    caplog.set_level(logging.WARNING, logger="server.patches")
    original = hypercorn_tcp_server.TaskGroup
    applied = patches.apply_server_patches(_settings(DISABLED_PATCHES=("app_queue",)))
    assert applied["app_queue"] is False and applied["ws_pings"] is True
    assert hypercorn_tcp_server.TaskGroup is original
    assert caplog.records == []


async def test_with_every_patch_left_off_the_real_server_still_serves(restored, tmp_path, caplog):
    """Hypercorn serving CloudBuffer over a real socket in this process, with
    every library looking unlike what its patch was checked against."""
    for break_it in BREAKS.values():
        break_it(restored)
    restored.setenv("CLOUDBUFFER_DATA_DIR", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="server.patches")
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.graceful_timeout = 1
    stop = asyncio.Event()
    server = asyncio.create_task(serving._serve(config, None, stop.wait))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(200):
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert health.status_code == 200
            upload = await client.post("/file/buffer", content=b"x" * 300_000,
                                       headers={"X-Data-Type": "file", "X-File-Name": "a.bin"})
            assert upload.status_code == 401 and upload.json()["error"]
    finally:
        stop.set()
        await asyncio.wait_for(server, 15)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("server.patches")]
    assert sorted(line.split()[1] for line in lines) == sorted(BREAKS)  # one line per patch
    assert all(record.levelno == logging.WARNING for record in caplog.records)
