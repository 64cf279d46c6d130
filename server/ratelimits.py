"""Rate limits (quart-rate-limiter): who is counted, how much, and where.

Every HTTP route carries a limit from the tiers below, spends the write
budget, or is marked @rate_exempt (tests/test_ratelimits.py walks the URL
map to keep it so). The limiter is GCRA: `count` requests per `period` as
a burst, refilling evenly. Over a limit the request gets 429 with
Retry-After in our usual error shape (server/errors.py). The live socket is
not an HTTP route: its messages go through a per-connection token bucket
(live/protocol.py), and its `set` spends the write budget.

The write budget is one count per user that every way of writing the
buffer spends: POST /file/buffer, /file/load, /share-target, sharing an
item, the socket's `set`, and anything added later (spend_write). The
library counts per route (its keys hold the endpoint) and reads, then
writes, its stored time, so 20 sockets writing at once would each find
the budget unspent; the budget is the same GCRA step, on the same stores,
done whole: in one Redis script, or in memory with nothing in between
that lets another task run.

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
from functools import wraps
from typing import TYPE_CHECKING

from quart import Quart, current_app, g, request
from quart_rate_limiter import (QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, RateLimit, RateLimiter, rate_exempt,  # noqa: F401
                                rate_limit)  # (rate_exempt and rate_limit are re-exported)
from quart_rate_limiter.store import MemoryStore, RateLimiterStoreABC

from .errors import APIError, RateLimited
from .services import services

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "cloudbuffer:ratelimit:"


# --- who is asking ----------------------------------------------------------

def client_ip() -> str:
    """The client's address as far as we can trust it (see module doc)."""
    if "client_ip" in g:
        return g.client_ip
    hops = services().settings.trusted_hops
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
    return key_of_user(principal.user_id) if principal is not None else "ip:" + client_ip()


def key_of_user(user_id: int) -> str:
    return f"user:{user_id}"


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
# A link's password: 20 tries a minute from one address, and 10 per 5
# minutes at one link whoever asks (a botnet spread over many addresses).
async def share_link_key() -> str:
    from .models.sessions import hash_secret

    token = request.args.get("token") or (request.view_args or {}).get("token") or ""
    return "link:" + hash_secret(token[:128]).hex()[:32]


SHARE_PASSWORD = [_limit(20, MINUTE, ip_key), _limit(10, 5 * MINUTE, share_link_key)]
# Buffer writes and uploads per user, however they come (see the module
# doc): a burst of 60, then one a second.
WRITES = _limit(60, MINUTE, user_key)
# Changing the password needs the current one: guessing it is limited per
# user like logins (and per address).
PASSWORD = [_limit(20, MINUTE, ip_key), _limit(10, 5 * MINUTE, user_key)]
# A resumable upload's own requests (PATCH, HEAD) per user: an upload spent
# one write at its creation and then sends many pieces.
UPLOAD_CHUNKS = [_limit(600, MINUTE, user_key)]
# Other account changes (tokens, devices, logout) per user.
ACCOUNT_WRITE = [_limit(60, MINUTE, user_key)]
# Reads of one's own buffer, history and profile.
READ = [_limit(600, MINUTE, user_key)]
# Pages and the API description, per address.
PAGE = [_limit(300, MINUTE, ip_key)]
# "Add a device": a logged-in device shows at most 10 codes per 10 minutes
# (its user's count); a new device tries at most 10 codes a minute from one
# address and 30 an hour. A code has 50 random bits and lives 2 minutes, so
# even a million addresses would need millions of years to hit one.
PAIR_CREATE = [_limit(10, 10 * MINUTE, user_key)]
PAIR_CLAIM = [_limit(10, MINUTE, ip_key), _limit(30, HOUR, ip_key)]
# The waiting device asks for news about once a second.
PAIR_WAIT = [_limit(240, MINUTE, ip_key)]


# --- where counts are kept ---------------------------------------------------

def _seconds_over(tat: float, now: float, limit: RateLimit) -> float:
    """GCRA: how long before an arrival at `now` would be allowed, given the
    theoretical arrival time `tat` (0 or less: allowed now)."""
    return max(tat, now) - now - (limit.period.total_seconds() - limit.inverse)


class PruningMemoryStore(MemoryStore):
    """The library's memory store forgets nothing; a key whose theoretical
    arrival time has passed carries no information, so drop those now and then."""

    PRUNE_EVERY = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._pruned_at = time.monotonic()

    async def take(self, key: str, limit: RateLimit) -> float:
        """Count one arrival against `limit` unless it is spent: 0, or the
        seconds until the next is allowed. Neither get nor set suspends, so
        no other task runs between reading the time and writing it."""
        now = datetime.now(timezone.utc)
        tat = max(await self.get(key, now), now)
        wait = _seconds_over(tat.timestamp(), now.timestamp(), limit)
        if wait > 0:
            return wait
        await self.set(key, tat + timedelta(seconds=limit.inverse))
        return 0.0

    async def set(self, key: str, tat: datetime) -> None:
        await super().set(key, tat)
        if time.monotonic() - self._pruned_at > self.PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            now = datetime.now(timezone.utc)
            for stale in [k for k, v in self._tats.items() if v < now]:
                del self._tats[stale]


# PruningMemoryStore.take as one script, so no other worker's step comes
# between the read and the write; Redis's clock is the one all hosts share.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local wait = tat - now - tonumber(ARGV[2])
if wait > 0 then return tostring(wait) end
tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], tostring(tat), 'EXAT', math.floor(tat) + 1)
return '0'
"""


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
        self._take = self._redis.register_script(_TAKE_SCRIPT)

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

    async def take(self, key: str, limit: RateLimit) -> float:
        """PruningMemoryStore.take, for every worker and host at once."""
        from redis.exceptions import RedisError

        try:
            wait = await self._take(keys=[KEY_PREFIX + key],
                                    args=[repr(limit.inverse), repr(limit.period.total_seconds() - limit.inverse)])
        except (RedisError, OSError) as error:
            self._outage(error)
            return await self._fallback.take(key, limit)
        return float(wait)

    async def after_serving(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


# --- the write budget ----------------------------------------------------------

WRITE_BUDGET_ATTRIBUTE = "_cloudbuffer_spends_write_budget"


async def spend_write(key: str) -> None:
    """Spend one write of `key`'s budget (a user_key), or raise RateLimited
    with the seconds until the next write is allowed."""
    if not current_app.config["QUART_RATE_LIMITER_ENABLED"]:
        return
    store = services().rate_limiter.store
    wait = await store.take(f"writes-{WRITES.key}-{key}", WRITES)
    if wait > 0:
        raise RateLimited(wait, f"Too many writes: at most {WRITES.count} a minute for your buffer, uploads and "
                                "shares together, from all your devices.")


def spends_write_budget(handler):
    """Route decorator: each request spends one write of the asker's budget
    before the handler runs (an anonymous request, about to be refused,
    spends its address's). Put it above @login_required, where the library's
    limits go."""

    @wraps(handler)
    async def spend_then_handle(*args, **kwargs):
        await spend_write(await WRITES.key_function())
        return await handler(*args, **kwargs)

    setattr(spend_then_handle, WRITE_BUDGET_ATTRIBUTE, True)
    return spend_then_handle


def is_rate_limited(view) -> bool:
    """Whether requests to this view can be refused with 429."""
    return bool(getattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, None) or getattr(view, WRITE_BUDGET_ATTRIBUTE, False))


def init_rate_limits(app: Quart, settings: Settings) -> RateLimiter:
    store = RedisStore(settings.redis_url) if settings.redis_url else PruningMemoryStore()
    limiter = RateLimiter(app, key_function=ip_key, store=store, enabled=settings.rate_limits)
    # Quart's own static route: the app's CSS and images, cheap and cached.
    rate_exempt(Quart.send_static_file)
    return limiter
