"""Every change CloudBuffer makes to a library's internals, one module each.

A patch is anything that reaches past a library's public API: a module-level
name swapped, a private attribute read or written, a method replaced by an
edited copy of the library's own code. Each module here says what it
changes, the benchmark figure it buys (measured with and without it, back to
back; docs/benchmarks.md) and the versions it was checked against, which
pyproject.toml pins.

At start-up each patch first looks for what it needs (names, signatures,
the source of the code it replaces). If anything is not as checked, that one
patch is left off with one warning line and the server runs as the library
ships; a library upgrade can cost memory or speed, never a crash.
CLOUDBUFFER_DISABLED_PATCHES leaves patches off by name, to measure one
(`python -m bench --disable-patches NAME`) or to work around an upgrade.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import app_queue, request_body, ws_compression, ws_pings
from .base import Patch, apply_patches

if TYPE_CHECKING:
    from ..config import Settings

# Applied to each app by create_app.
APP_PATCHES: tuple[Patch, ...] = (request_body.PATCH,)
# Applied to Hypercorn once per worker process, before it serves.
SERVER_PATCHES: tuple[Patch, ...] = (ws_compression.PATCH, ws_pings.PATCH, app_queue.PATCH)
NAMES = tuple(patch.name for patch in (*APP_PATCHES, *SERVER_PATCHES))


def apply_app_patches(app: Any, disabled: tuple[str, ...]) -> dict[str, bool]:
    return apply_patches(APP_PATCHES, app, disabled)


def apply_server_patches(settings: Settings) -> dict[str, bool]:
    return apply_patches(SERVER_PATCHES, settings, settings.disabled_patches)
