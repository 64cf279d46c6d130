"""Who is asking: a cookie session (a browser device) or an API token.

quart-auth signs the cookie; its auth_id is a random session key whose hash is
a row in `sessions`, so deleting the row revokes the cookie everywhere. Bearer
tokens are looked up by hash in `api_tokens`. Both resolve to a Principal,
cached on `g` for the request (the live socket resolves its own, once).
"""
from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache, wraps
from typing import Awaitable, Callable, ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from quart import current_app, g, request
from quart_auth import AuthUser, QuartAuth, login_user
from urllib.parse import urlsplit

from .credentials import common_passwords
from .errors import APIError
from .models import sessions as sessions_model
from .models import users as users_model

P = ParamSpec("P")
T = TypeVar("T")

TOUCH_INTERVAL = 60.0  # seconds between last-seen updates of one device
_hasher = PasswordHasher()  # argon2id with the library's current defaults


@cache
def _dummy_hash() -> str:
    """Verifying against this when the username is unknown makes that answer
    cost the same time as a wrong password, so timing does not reveal
    usernames. Made on first use (a tenth of a second of argon2, which every
    worker and every CLI command paid at import); warm_up_password_checks
    makes it before the server takes requests, so not even the first login
    pays for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


async def warm_up_password_checks() -> None:
    await asyncio.to_thread(_dummy_hash)
    await asyncio.to_thread(common_passwords)


@dataclass(frozen=True, slots=True)  # one per live socket, for its whole life
class Principal:
    user_id: int
    username: str
    device_kind: str  # "session" (a logged-in browser/app) or "token" (API token)
    device_id: int
    device_name: str

    @property
    def device_key(self) -> str:
        """Stable id of this device, unique across sessions and tokens."""
        return f"{self.device_kind[0]}{self.device_id}"


def init_auth(app) -> None:
    """One QuartAuth per app. QuartAuth.init_app copies the app's cookie
    settings (Secure flag, …) onto the instance only while they are unset, so
    a module-wide instance would give every later app in the process (tests)
    the first app's settings."""
    QuartAuth(app)


def _auth_manager() -> QuartAuth:
    return current_app.extensions["QUART_AUTH"][0]


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def device_name_from_user_agent(user_agent: str) -> str:
    """A readable default name ("Firefox on Android"); the user can rename it."""
    browsers = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                ("Chromium/", "Chromium"), ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"))
    systems = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
               ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
    browser = next((name for marker, name in browsers if marker in user_agent), None)
    system = next((name for marker, name in systems if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"


def clean_device_name(name: str) -> str:
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()[:64]
    if not name:
        raise APIError(400, "invalid_device_name", "A device name cannot be empty.")
    return name


async def start_session(user: users_model.User, device_name: str) -> sessions_model.Session:
    session_key = secrets.token_urlsafe(32)
    session = await current_app.db.write(sessions_model.insert_session, user.id, session_key, device_name)
    login_user(AuthUser(session_key), remember=True)
    return session


def bearer_from_header(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def bearer_token() -> str | None:
    return bearer_from_header(request.headers.get("Authorization", ""))


async def principal_from_credentials(token: str | None, signed_cookie: str | None) -> Principal | None:
    """Who a bearer token or, without one, a signed session cookie belongs to.
    Requests come here through current_principal(); the live socket, which
    is served outside Quart's request machinery, calls it directly."""
    db = current_app.db
    now = time.time()
    if token is not None:
        found = await db.read(sessions_model.select_api_token_with_owner, token)
        if found is None:
            return None
        api_token, username = found
        if api_token.last_used_at is None or now - api_token.last_used_at > TOUCH_INTERVAL:
            await db.write(sessions_model.touch_api_token, api_token.id, now)
        return Principal(api_token.user_id, username, "token", api_token.id, api_token.name)

    session_key = _auth_manager().load_token(signed_cookie) if signed_cookie else None
    if session_key is None:
        return None
    found = await db.read(sessions_model.select_session_with_owner, session_key)
    if found is None:
        return None
    session, username = found
    if now - session.last_seen_at > TOUCH_INTERVAL:
        await db.write(sessions_model.touch_session, session.id, now)
    return Principal(session.user_id, username, "session", session.id, session.device_name)


def session_cookie_name() -> str:
    return _auth_manager().cookie_name


async def current_principal() -> Principal | None:
    if "principal" not in g:
        g.principal = await principal_from_credentials(bearer_token(), request.cookies.get(session_cookie_name()))
    return g.principal


async def require_principal() -> Principal:
    principal = await current_principal()
    if principal is None:
        if bearer_token() is not None:
            raise APIError(401, "invalid_token", "That API token is not valid (it may have been revoked).",
                           {"WWW-Authenticate": 'Bearer realm="cloudbuffer"'})
        raise APIError(401, "unauthorized", "You need to log in (or send an API token) to do that.")
    return principal


def login_required(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Route decorator; the wrapped handler can call current_principal()."""

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        await require_principal()
        return await func(*args, **kwargs)

    wrapper.login_required = True  # read by the route-policy test
    return wrapper


def public(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Marks a route as deliberately open to anyone (checked by a policy test)."""
    func.public = True
    return func


def origin_of(scheme: str, host: str) -> str:
    # A WebSocket's scheme is ws/wss, but browsers send the page's http(s) Origin.
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{scheme}://{host}"


def allowed_origins(own_origin: str) -> set[str]:
    config = current_app.config
    origins = {own_origin, *config["CLOUDBUFFER"]["ALLOWED_ORIGINS"]}
    if config["CLOUDBUFFER"]["PUBLIC_URL"]:
        parts = urlsplit(config["CLOUDBUFFER"]["PUBLIC_URL"])
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def origin_is_allowed(origin: str, own_origin: str | None = None) -> bool:
    """`own_origin`: this server as the client addressed it (default: the
    current request's scheme and Host)."""
    own = own_origin or origin_of(request.scheme, request.host)
    # Plain equality: an Origin is no secret, and hmac.compare_digest raises
    # TypeError on non-ASCII text, which any client can send.
    return origin.rstrip("/") in allowed_origins(own)


async def check_same_origin() -> None:
    """CSRF defence for cookie-authenticated writes: a browser tells us where a
    request comes from (Sec-Fetch-Site, Origin); another site is refused.
    Bearer-token requests carry no ambient credential, so they are exempt;
    so are clients that send neither header (curl, scripts)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or bearer_token() is not None:
        return
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None and site not in ("same-origin", "none"):
        if not (origin and origin_is_allowed(origin)):
            raise APIError(403, "cross_origin", "Requests from other sites are not allowed.")
    if origin is not None and origin != "null" and not origin_is_allowed(origin):
        raise APIError(403, "cross_origin", "Requests from other sites are not allowed.")
    if origin == "null" and site not in ("same-origin", "none"):
        raise APIError(403, "cross_origin", "Requests from other sites are not allowed.")


async def principal_still_valid(principal: Principal) -> bool:
    """Re-checked after a broker outage, when a revoke event may have been lost."""
    db = current_app.db
    if principal.device_kind == "token":
        tokens = await db.read(sessions_model.select_api_tokens, principal.user_id)
        return any(token.id == principal.device_id for token in tokens)
    sessions = await db.read(sessions_model.select_sessions, principal.user_id)
    return any(session.id == principal.device_id for session in sessions)
