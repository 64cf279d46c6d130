"""Rate limits (quart-rate-limiter): who is counted, how much, and where.

Every HTTP route carries a limit from the tiers below or is marked
@rate_exempt (tests/test_ratelimits.py walks the URL map to keep it so).
The limiter is GCRA: `count` requests per `period` as a burst, refilling
evenly. Over a limit the request gets 429 with Retry-After in our usual
error shape (server/errors.py). The live socket is not an HTTP route: its
messages go through a per-connection token bucket (blueprints/live.py).

Counts live in Redis when CLOUDBUFFER_REDIS_URL is set, so all workers and
hosts share them; otherwise in this process's memory. If Redis stops
answering, counting falls back to memory for the time being: HTTP keeps
working (as the broker does), each worker then counting on its own.

Client addresses: with CLOUDBUFFER_TRUSTED_HOPS = N > 0 the client is the
N-th address from the right of X-Forwarded-For, i.e. the one our own
proxies saw; anything a client wrote further left is ignored, so a forged
header cannot buy a fresh counter. IPv6 clients are counted per /64, the
block one subscriber usually holds.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from datetime import datetime, timedelta, timezone

from quart import Quart, current_app, g, request
from quart_rate_limiter import RateLimit, RateLimiter, rate_exempt, rate_limit  # noqa: F401 (re-exported)
from quart_rate_limiter.store import MemoryStore, RateLimiterStoreABC

from .errors import APIError

log = logging.getLogger(__name__)

KEY_PREFIX = "cloudbuffer:ratelimit:"


# --- who is asking ----------------------------------------------------------

def client_ip() -> str:
    """The client's address as far as we can trust it (see module doc)."""
    if "client_ip" in g:
        return g.client_ip
    hops = current_app.config["CLOUDBUFFER"]["TRUSTED_HOPS"]
    address = request.remote_addr or "unknown"
    if hops > 0:
        forwarded = [part.strip() for part in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
        forwarded = [part for part in forwarded if part]
        # Fewer entries than trusted proxies: the request did not come through
        # all of them, so only the socket's peer is known for sure.
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    g.client_ip = _bucket_of(address)
    return g.client_ip


def _bucket_of(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:64]  # not an address (a proxy's "unknown"): counted as given
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


async def ip_key() -> str:
    return "ip:" + client_ip()


async def user_key() -> str:
    """The logged-in user; an anonymous request (about to get 401) by address."""
    from .auth import current_principal

    principal = await current_principal()
    return f"user:{principal.user_id}" if principal is not None else "ip:" + client_ip()


async def username_key() -> str:
    """The username a login or registration is for, read from its body (the
    parsed body is kept for the handler, see forms.read_input)."""
    from .forms import read_input

    try:
        data = await read_input()
    except APIError:
        return "username:"  # the handler answers the bad body
    username = data.get("username")
    return "username:" + (username.strip().lower()[:64] if isinstance(username, str) else "")


# --- the tiers ---------------------------------------------------------------

def _limit(count: int, seconds: int, key) -> RateLimit:
    return RateLimit(count, timedelta(seconds=seconds), key_function=key)


MINUTE, HOUR = 60, 3600

# Password guessing: per address (a NAT of many people still gets 20 tries a
# minute) and per account (10 tries per 5 minutes, whoever asks, which also
# caps a botnet spread over many addresses). The price is that someone can
# keep one account's login busy; its owner's existing sessions keep working.
LOGIN = [_limit(20, MINUTE, ip_key), _limit(10, 5 * MINUTE, username_key)]
# Sign-ups: 10 accounts an hour from one address; 5 a minute probing one name.
REGISTER = [_limit(10, HOUR, ip_key), _limit(5, MINUTE, username_key)]
# Share links are open to anyone holding the token: lookups per address, so
# guessing (hopeless at 192 random bits anyway) and hammering stay slow.
SHARE_LOOKUP = [_limit(120, MINUTE, ip_key)]
# Buffer writes and uploads per user: a burst of 60, then one a second.
UPLOAD = [_limit(60, MINUTE, user_key)]
# Changing the password needs the current one: guessing it is limited per
# user like logins (and per address).
PASSWORD = [_limit(20, MINUTE, ip_key), _limit(10, 5 * MINUTE, user_key)]
# Other account changes (tokens, devices, logout) per user.
ACCOUNT_WRITE = [_limit(60, MINUTE, user_key)]
# Reads of one's own buffer, history and profile.
READ = [_limit(600, MINUTE, user_key)]
# Pages and the API description, per address.
PAGE = [_limit(300, MINUTE, ip_key)]


# --- where counts are kept ---------------------------------------------------

class PruningMemoryStore(MemoryStore):
    """The library's memory store forgets nothing; a key whose theoretical
    arrival time has passed carries no information, so drop those now and then."""

    PRUNE_EVERY = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._pruned_at = time.monotonic()

    async def set(self, key: str, tat: datetime) -> None:
        await super().set(key, tat)
        if time.monotonic() - self._pruned_at > self.PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            now = datetime.now(timezone.utc)
            for stale in [k for k, v in self._tats.items() if v < now]:
                del self._tats[stale]


class RedisStore(RateLimiterStoreABC):
    """Counts shared by every worker and host, in Redis (redis-py's asyncio
    client). Keys expire when they stop mattering (the library's own Redis
    store keeps them forever). Short timeouts and a memory fallback keep a
    Redis outage from failing logins and uploads."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = None
        self._fallback = PruningMemoryStore()
        self._warned_at = 0.0

    async def before_serving(self) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.from_url(self._url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def _outage(self, error: Exception) -> None:
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("rate limits: Redis unavailable (%s); counting in this process meanwhile", error)

    async def get(self, key: str, default: datetime) -> datetime:
        from redis.exceptions import RedisError

        try:
            value = await self._redis.get(KEY_PREFIX + key)
        except (RedisError, OSError) as error:
            self._outage(error)
            return await self._fallback.get(key, default)
        return default if value is None else datetime.fromtimestamp(float(value), timezone.utc)

    async def set(self, key: str, tat: datetime) -> None:
        from redis.exceptions import RedisError

        stamp = tat.timestamp()
        try:
            await self._redis.set(KEY_PREFIX + key, repr(stamp), exat=int(stamp) + 1)
        except (RedisError, OSError) as error:
            self._outage(error)
            await self._fallback.set(key, tat)

    async def after_serving(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def init_rate_limits(app: Quart) -> RateLimiter:
    settings = app.config["CLOUDBUFFER"]
    store = RedisStore(settings["REDIS_URL"]) if settings["REDIS_URL"] else PruningMemoryStore()
    limiter = RateLimiter(app, key_function=ip_key, store=store, enabled=settings["RATE_LIMITS"])
    app.extensions["cloudbuffer_rate_limiter"] = limiter
    # Quart's own static route: the app's CSS and images, cheap and cached.
    rate_exempt(Quart.send_static_file)
    return limiter
