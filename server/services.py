"""The app's services, in one registry that create_app builds.

Every long-lived object a request or a socket needs (the settings, the
database, file storage, the broker, presence, the principal cache, the rate limiter, the bodies
in flight, the live sockets' bookkeeping, the background tasks) is a field
of `Services`, built once by the app factory and kept in
`app.extensions["cloudbuffer"]`; code reaches it through `services()`
rather than through attributes set on the app, so what exists is written
in one place and nothing is created lazily on first use.

Only type names are imported here: the modules that use `services()` are
the ones these types come from.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quart import Quart, current_app

if TYPE_CHECKING:
    from quart_rate_limiter import RateLimiter

    from .broker import Broker
    from .config import Settings
    from .db import Database
    from .inflight import BodiesInFlight
    from .live.keepalive import KeepAlive
    from .presence import Presence
    from .principal_cache import PrincipalCache
    from .storage import Storage

EXTENSION = "cloudbuffer"


@dataclass(eq=False)
class Services:
    settings: Settings
    db: Database
    storage: Storage
    broker: Broker
    presence: Presence
    bodies_in_flight: BodiesInFlight
    principals: PrincipalCache  # who a credential is, remembered until the account changes (principal_cache.py)
    rate_limiter: RateLimiter | None = None  # set by ratelimits.init_rate_limits, which Quart's extension needs the app for
    keep_alive: KeepAlive | None = None  # set by create_app once the registry exists (it reads the registry)
    # Live sockets per user on this worker (live/connection.py counts them against WS_MAX_PER_USER).
    live_counts: dict[int, int] = field(default_factory=dict)
    # Set when the server starts stopping: the keep-alive closes every socket with 1001.
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    background_tasks: list[asyncio.Task] = field(default_factory=list)


def services(app: Quart | None = None) -> Services:
    """The registry of `app`, by default the current one."""
    return (app if app is not None else current_app).extensions[EXTENSION]
