"""CloudBuffer: copy on one device, paste on all of them."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Quart, Response, has_request_context, has_websocket_context, request, websocket
from werkzeug.routing import IntegerConverter

from .auth import check_same_origin, init_auth, warm_up_password_checks
from .broker import create_broker
from .compression import compress_response
from .config import load_settings
from .data_dir import ensure_data_dir, load_or_create_secret_key
from .db import database_for
from .instance import check_same_secret_key
from .errors import register_error_handlers
from .inflight import BodiesInFlight
from .log_safety import request_for_log
from .presence import create_presence
from .principal_cache import PrincipalCache
from .api_schema import init_openapi
from .ratelimits import init_rate_limits
from .reveal_once import init_reveal_once
from .storage import storage_for
from .services import EXTENSION, Services, services
from .sweeper import run_sweeper
from .patches import apply_app_patches
from .wrappers import CloudBufferResponse

__version__ = "0.1.0"

log = logging.getLogger(__name__)


def create_app(overrides: dict[str, Any] | None = None) -> Quart:
    """Build the app. `overrides` replaces CLOUDBUFFER_* settings (tests)."""
    settings = load_settings(overrides=overrides)
    ensure_data_dir(settings.data_dir)

    app = CloudBufferQuart(__name__, template_folder="../templates", static_folder="../static")
    # <int:…> ids beyond SQLite's 64-bit integers are a 404, not an
    # OverflowError in the query (found by tests/test_fuzz.py).
    app.url_map.converters["int"] = SQLiteIntConverter
    apply_app_patches(app, settings.disabled_patches)
    app.secret_key = settings.secret_key or load_or_create_secret_key(settings.data_dir)
    # Uploads are streamed and limited by our own code, per request; Quart's
    # global cap only stops bodies that are far beyond any allowed upload.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024 * 1024
    app.config["BODY_TIMEOUT"] = settings.upload_idle_seconds
    app.config["QUART_AUTH_COOKIE_NAME"] = "cloudbuffer_session"
    app.config["QUART_AUTH_DURATION"] = 400 * 24 * 3600
    secure = settings.secure_cookies
    if secure is None:
        secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    app.config["QUART_AUTH_COOKIE_SECURE"] = secure
    init_reveal_once(app, secure)
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    init_auth(app)

    broker = create_broker(settings.redis_url)
    principals = PrincipalCache(lambda: broker.hears_account_changes)
    broker.watch_accounts(principals)
    registry = app.extensions[EXTENSION] = Services(
        settings=settings,
        db=database_for(settings),
        storage=storage_for(settings),
        broker=broker,
        presence=create_presence(settings.redis_url),
        bodies_in_flight=BodiesInFlight(settings.uploads_in_flight),
        principals=principals,
    )

    register_error_handlers(app)
    # Counted before anything else runs, so floods are turned away cheaply.
    registry.rate_limiter = init_rate_limits(app, settings)
    init_openapi(app)
    app.before_request(check_same_origin)
    # One hook for all of our own work on an answer: each hook is a call
    # through Quart's machinery on every request (docs/benchmarks.md, #7).
    app.after_request(_finish_response)
    app.after_websocket(_security_headers_of_refusal)

    from .blueprints import account, api_docs, buffer, files, pairing, pwa, system, uploads
    from .live.connection import serve_live_sockets
    from .blueprints import e2e as e2e_routes
    from .live.keepalive import KeepAlive

    registry.keep_alive = KeepAlive(app.app_context, registry)
    serve_live_sockets(app, registry.keep_alive)

    for blueprint in (account.blueprint, buffer.blueprint, files.blueprint, pairing.blueprint, pwa.blueprint,
                      system.blueprint, api_docs.blueprint, e2e_routes.blueprint, uploads.blueprint):
        app.register_blueprint(blueprint)

    @app.before_serving
    async def startup() -> None:
        await registry.db.open()
        await check_same_secret_key(registry.db, app.secret_key)
        await registry.storage.start()
        await registry.broker.start()
        await warm_up_password_checks()
        registry.background_tasks.append(asyncio.create_task(
            run_sweeper(registry.db, registry.storage, settings.sweep_seconds, settings.upload_idle_seconds),
            name="cloudbuffer-sweeper",
        ))

    @app.after_serving
    async def shutdown() -> None:
        registry.shutting_down.set()
        tasks, registry.background_tasks = registry.background_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await registry.broker.stop()
        await registry.presence.close()
        await registry.db.close()
        await registry.storage.stop()

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


async def _security_headers_of_refusal(response: Response | None) -> Response | None:
    """A WebSocket handshake Quart answered (a refusal, live/connection.py)
    gets the same headers as any answer; an accepted one has no response."""
    if response is not None:
        _security_headers(response)
    return response


# Two years, the preload list's minimum; sent only when PUBLIC_URL says the
# server is reached over https (a browser ignores it over plain http).
HSTS = "max-age=63072000; includeSubDomains"


async def _finish_response(response: Response) -> Response:
    if request.endpoint == "static":
        from .blueprints.pwa import cache_static

        cache_static(response)
    response = await compress_response(response)
    _security_headers(response)
    return response


# Unless a handler chose its caching (downloads, the app shell, static
# files), an answer is never stored: JSON answers and pages carry a user's
# data (the profile page lists devices and tokens), and neither a shared
# cache nor the back button after a logout may show them.
_DEFAULT_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self';"
     " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"),
)


def _security_headers(response: Response) -> None:
    headers = response.headers
    # One pass over the few headers the answer has, then appends: six
    # setdefault calls each searched and validated the list again.
    present = {name.lower() for name in headers.keys()}
    for name, value in _DEFAULT_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    if "strict-transport-security" not in present and (
            services().settings.public_url or "").startswith("https://"):
        headers.add("Strict-Transport-Security", HSTS)
