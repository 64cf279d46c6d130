"""CloudBuffer: copy on one device, paste on all of them."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Quart, Response, current_app, has_request_context, has_websocket_context, request, websocket
from werkzeug.routing import IntegerConverter

from .auth import check_same_origin, init_auth, warm_up_password_checks
from .broker import create_broker
from .compression import init_compression
from .config import load_settings
from .data_dir import ensure_data_dir, load_or_create_secret_key
from .db import Database
from .errors import register_error_handlers
from .inflight import BodiesInFlight
from .log_safety import request_for_log
from .presence import create_presence
from .api_schema import init_openapi
from .ratelimits import init_rate_limits
from .reveal_once import init_reveal_once
from .storage import Storage
from .sweeper import run_sweeper
from .patches import apply_app_patches
from .wrappers import CloudBufferResponse

__version__ = "0.1.0"

log = logging.getLogger(__name__)


def create_app(overrides: dict[str, Any] | None = None) -> Quart:
    """Build the app. `overrides` replaces CLOUDBUFFER_* settings (tests)."""
    settings = load_settings(overrides=overrides)
    ensure_data_dir(settings["DATA_DIR"])

    app = CloudBufferQuart(__name__, template_folder="../templates", static_folder="../static")
    # <int:…> ids beyond SQLite's 64-bit integers are a 404, not an
    # OverflowError in the query (found by tests/test_fuzz.py).
    app.url_map.converters["int"] = SQLiteIntConverter
    app.config["CLOUDBUFFER"] = settings
    apply_app_patches(app)
    app.secret_key = settings["SECRET_KEY"] or load_or_create_secret_key(settings["DATA_DIR"])
    # Uploads are streamed and limited by our own code, per request; Quart's
    # global cap only stops bodies that are far beyond any allowed upload.
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_BYTES"] + 1024 * 1024
    app.config["BODY_TIMEOUT"] = settings["UPLOAD_IDLE_SECONDS"]
    app.config["QUART_AUTH_COOKIE_NAME"] = "cloudbuffer_session"
    app.config["QUART_AUTH_DURATION"] = 400 * 24 * 3600
    secure = settings["SECURE_COOKIES"]
    if secure is None:
        secure = bool(settings["PUBLIC_URL"] and settings["PUBLIC_URL"].startswith("https://"))
    app.config["QUART_AUTH_COOKIE_SECURE"] = secure
    init_reveal_once(app, secure)
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    init_auth(app)

    app.db = Database(settings["DATA_DIR"] / "cloudbuffer.sqlite3")
    app.storage = Storage(settings["DATA_DIR"], settings["MIN_FREE_BYTES"], settings["UPLOAD_NICE"])
    app.broker = create_broker(settings["REDIS_URL"])
    app.presence = create_presence(settings["REDIS_URL"])
    app.live_counts = {}
    app.bodies_in_flight = BodiesInFlight(settings["UPLOADS_IN_FLIGHT"])
    app.shutting_down = asyncio.Event()

    register_error_handlers(app)
    # Counted before anything else runs, so floods are turned away cheaply.
    init_rate_limits(app)
    init_openapi(app)
    app.before_request(check_same_origin)
    app.after_request(_security_headers)
    init_compression(app)

    from .blueprints import account, api_docs, buffer, files, pairing, pwa, system
    from .blueprints import e2e as e2e_routes
    from .live.connection import LiveSocketsFirst
    from .live.keepalive import KeepAlive

    app.asgi_app = LiveSocketsFirst(app, app.asgi_app, KeepAlive(app))

    for blueprint in (account.blueprint, buffer.blueprint, files.blueprint, pairing.blueprint, pwa.blueprint,
                      system.blueprint, api_docs.blueprint, e2e_routes.blueprint):
        app.register_blueprint(blueprint)

    @app.before_serving
    async def startup() -> None:
        await app.db.open()
        await app.broker.start()
        await warm_up_password_checks()
        app.background_tasks_ = [
            asyncio.create_task(
                run_sweeper(app.db, app.storage, settings["SWEEP_SECONDS"], settings["UPLOAD_IDLE_SECONDS"]),
                name="cloudbuffer-sweeper",
            )
        ]

    @app.after_serving
    async def shutdown() -> None:
        app.shutting_down.set()
        for task in getattr(app, "background_tasks_", []):
            task.cancel()
        await asyncio.gather(*getattr(app, "background_tasks_", []), return_exceptions=True)
        await app.broker.stop()
        await app.presence.close()
        await app.db.close()
        app.storage.close()

    return app


class CloudBufferQuart(Quart):
    response_class = CloudBufferResponse

    def log_exception(self, exception_info) -> None:
        """Quart's, with the request as a log may show it (server/log_safety.py):
        Quart's own names the path as it came, share token and all. It runs
        for an error in an error handler or in an after_request function."""
        if has_request_context():
            self.logger.error("Exception on request %s", request_for_log(request), exc_info=exception_info)
        elif has_websocket_context():
            self.logger.error("Exception on websocket %s", request_for_log(websocket), exc_info=exception_info)
        else:
            self.logger.error("Exception", exc_info=exception_info)


class SQLiteIntConverter(IntegerConverter):
    """An id too big for SQLite's 64-bit integers names no row: it becomes -1
    (never an id), so the handler answers its usual 404."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number < 2**63 else -1


# Two years, the preload list's minimum; sent only when PUBLIC_URL says the
# server is reached over https (a browser ignores it over plain http).
HSTS = "max-age=63072000; includeSubDomains"


async def _security_headers(response: Response) -> Response:
    headers = response.headers
    # Unless a handler chose its caching (downloads, the app shell, static
    # files), an answer is never stored: JSON answers and pages carry a
    # user's data (the profile page lists devices and tokens), and neither
    # a shared cache nor the back button after a logout may show them.
    headers.setdefault("Cache-Control", "no-store")
    if (current_app.config["CLOUDBUFFER"]["PUBLIC_URL"] or "").startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self';"
        " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    return response
