"""Pub/sub fan-out of buffer events to the sockets of a user.

The shape follows encode/broadcaster: `subscribe()` is an async context manager
yielding a queue-backed async iterator, and one small interface has a memory
backend (one process, nothing to install) and a Redis backend (any number of
workers and hosts).

Events are at most once. Anything that may have lost events -- a slow consumer
whose queue overflowed, a Redis connection that dropped -- gets a RESYNC instead:
"re-read the snapshot from the DB". Clients ignore events whose seq is not newer
than theirs, so a RESYNC is always safe, just a little more work.

Messages are clipboard contents: they are passed through as-is and never logged.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import random
import time
import uuid
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .queues import LightQueue

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256  # events a socket may fall behind before it is told to resync instead

# Redis timings. A stopped server or a killed connection is noticed at once (the
# socket reports EOF); the timeouts bound what a silent fault can cost.
CONNECT_TIMEOUT = 2.0  # connecting to an unreachable host
SOCKET_TIMEOUT = 2.0  # a command (PUBLISH, SUBSCRIBE) to a server that stopped answering
PING_INTERVAL = 3.0  # the listener pings after this much silence ...
PING_TIMEOUT = 2.0  # ... and gives the connection up if no answer comes in this long
PUBLISH_HEALTH_CHECK = 5  # a pooled publish connection idle this long is PINGed before use
PUBLISH_CONNECTIONS = 32  # publish connections per process; more publishes at once wait their turn
BACKOFF_MIN = 0.1  # reconnect delay, doubling (with jitter) up to BACKOFF_MAX
BACKOFF_MAX = 2.0
WARN_EVERY = 30.0  # seconds between repeated warnings about the same fault


class _Resync:
    def __repr__(self) -> str:
        return "RESYNC"


# Yielded by a subscription instead of a message: "you may have missed events,
# re-read the snapshot from the DB".
RESYNC: Final = _Resync()


class Subscription(LightQueue):
    """The events of one user for one local consumer (a socket), in publish
    order, with a bound: a consumer that falls QUEUE_SIZE events behind gets
    one RESYNC instead of them."""

    __slots__ = ("_maxsize",)

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        super().__init__()
        self._maxsize = maxsize

    def _put(self, item: str | _Resync) -> None:
        # Never block the publisher or the Redis listener on one slow consumer.
        # What it has queued is already stale; one RESYNC makes up for all of it.
        if self._items is not None and len(self._items) >= self._maxsize:
            self._items.clear()
            item = RESYNC
        self.put_nowait(item)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str | object:
        return await self.get()


class _Subscribed:
    """What Broker.subscribe returns. A class rather than an
    @asynccontextmanager, which keeps a suspended generator frame for as long
    as its block runs: a live socket's runs for hours (#3 in docs/benchmarks.md)."""

    __slots__ = ("_broker", "_user_id", "_subscription")

    def __init__(self, broker: "Broker", user_id: int) -> None:
        self._broker = broker
        self._user_id = user_id
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> Subscription:
        self._subscription = await self._broker._join(self._user_id)
        return self._subscription

    async def __aexit__(self, *exc_info) -> None:
        await self._broker._leave(self._user_id, self._subscription)


class Broker(abc.ABC):
    name: str = "abstract"

    def __init__(self) -> None:
        # user id -> the subscriptions open in this process
        self._local: dict[int, set[Subscription]] = {}
        self._account_watchers: list = []  # server/principal_cache.py

    def watch_accounts(self, watcher) -> None:
        """`watcher.forget_user(user_id)` on every account change heard (here
        or on another worker), `watcher.clear()` when some may have been missed."""
        self._account_watchers.append(watcher)

    @property
    def hears_account_changes(self) -> bool:
        """Whether every account change on any worker reaches this one now."""
        return False

    async def publish_account_change(self, user_id: int) -> None:
        """A user's sessions, tokens or names changed (logout, revoke, rename,
        password, deletion): forget what any worker remembers of them."""
        self._account_changed(user_id)

    def _account_changed(self, user_id: int) -> None:
        for watcher in self._account_watchers:
            watcher.forget_user(user_id)

    def _account_changes_missed(self) -> None:
        for watcher in self._account_watchers:
            watcher.clear()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def status(self) -> str:
        return "ok"

    @abc.abstractmethod
    async def publish(self, user_id: int, message: str) -> None: ...

    def subscribe(self, user_id: int) -> "_Subscribed":
        """`async with broker.subscribe(user_id) as subscription:` the
        user's events (and RESYNCs) for as long as the block runs."""
        return _Subscribed(self, user_id)

    async def _join(self, user_id: int) -> Subscription:
        subscription = Subscription()
        # Registered before anything is awaited, so from here on it receives
        # events and any RESYNC, even while the backend is still subscribing.
        self._local.setdefault(user_id, set()).add(subscription)
        try:
            await self._watch(user_id)
        except BaseException:
            await self._leave(user_id, subscription)
            raise
        return subscription

    async def _leave(self, user_id: int, subscription: Subscription) -> None:
        subscriptions = self._local.get(user_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._local[user_id]
        await self._unwatch(user_id)

    async def _watch(self, user_id: int) -> None:
        """Make sure this process receives `user_id`'s events (backend hook)."""

    async def _unwatch(self, user_id: int) -> None:
        """Called after a subscription closed; stop receiving if nobody local is left."""

    def _deliver(self, user_id: int, message: str) -> None:
        for subscription in self._local.get(user_id, ()):
            subscription._put(message)

    def _resync_all(self) -> None:
        for subscriptions in self._local.values():
            for subscription in subscriptions:
                subscription._put(RESYNC)


class MemoryBroker(Broker):
    """Single process: publish hands the message straight to the local queues."""

    name = "memory"

    async def publish(self, user_id: int, message: str) -> None:
        self._deliver(user_id, message)


class _RateLimitedWarning:
    """A warning logged at most once per `every` seconds; repeats are only counted."""

    def __init__(self, every: float = WARN_EVERY) -> None:
        self._every = every
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, text: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            text += " (%d similar warnings suppressed)"
            args += (self._suppressed,)
        logger.warning(text, *args)
        self._next = now + self._every
        self._suppressed = 0


def _describe(exc: BaseException) -> str:
    # Redis errors describe the connection, never the command's arguments.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Session:
    """One pub/sub connection and the channels SUBSCRIBEd on it.

    Never repaired in place: on any fault the supervisor throws the session away
    and builds a new one, so "the connection was re-established" always means
    "re-subscribe everything and RESYNC everyone" -- no path can skip the RESYNC.
    """

    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self.pubsub = pubsub
        self.live = False  # all channels (re)subscribed and acknowledged
        self.fault: BaseException | None = None
        # channel -> ack of the SUBSCRIBE that added it (done once Redis confirmed)
        self.channels: dict[str, asyncio.Future[bool]] = {}
        # SUBSCRIBEs still waiting for their reply, per channel in the order sent;
        # Redis answers in order, so the next reply belongs to the leftmost.
        self._pending: dict[str, collections.deque[asyncio.Future[bool]]] = {}
        self._loop = asyncio.get_running_loop()
        self._last_heard = self._loop.time()
        self._ping_sent: float | None = None

    async def open(self, control_channel: str) -> asyncio.Future[bool]:
        # The connection always has this private channel, so it is in pub/sub mode
        # from the start and reading from it blocks instead of returning at once.
        (ack,) = await self.subscribe(control_channel)
        # Registered after the first connect, so it only fires on a reconnect.
        self.pubsub.connection.register_connect_callback(self._reconnected)
        return ack

    def _reconnected(self, connection: object) -> None:
        # redis-py re-established the connection by itself (and re-subscribed).
        # Events published meanwhile are lost, so it counts as a dropped connection.
        self.fail(ConnectionError("pub/sub connection was re-established underneath"))

    async def subscribe(self, *channels: str) -> list[asyncio.Future[bool]]:
        acks = []
        for channel in channels:
            ack = self._loop.create_future()
            self.channels[channel] = ack
            self._pending.setdefault(channel, collections.deque()).append(ack)
            acks.append(ack)
        await self._send(self.pubsub.subscribe, *channels)
        return acks

    async def unsubscribe(self, channel: str) -> None:
        self.channels.pop(channel, None)
        await self._send(self.pubsub.unsubscribe, channel)

    async def _send(self, command, *channels: str) -> None:
        # Checked right before the command starts (no await in between): a failed
        # session must never send, or redis-py would open a fresh connection for it.
        if self.fault is not None:
            raise ConnectionError("pub/sub connection is gone")
        try:
            await command(*channels)
        except (RedisError, OSError) as exc:
            self.fail(exc)
            raise

    def acknowledged(self, channel: str) -> None:
        pending = self._pending.get(channel)
        if pending:
            ack = pending.popleft()
            if not pending:
                del self._pending[channel]
            if not ack.done():
                ack.set_result(True)

    def fail(self, exc: BaseException) -> None:
        if self.fault is None:
            self.fault = exc
        # Wake everyone waiting for a SUBSCRIBE reply: their subscription is already
        # registered locally, so the next session subscribes it and sends a RESYNC.
        for pending in self._pending.values():
            for ack in pending:
                if not ack.done():
                    ack.set_result(False)
        self._pending.clear()

    async def next_message(self) -> dict | None:
        """The next pub/sub message, or None on a quiet interval; raises on any fault."""
        if self.fault is not None:
            raise self.fault
        now = self._loop.time()
        if self._ping_sent is None and now - self._last_heard >= PING_INTERVAL:
            # Without this a server that vanished without closing the socket
            # (host down, network cut) would go unnoticed until TCP gives up.
            await self._send(self.pubsub.ping)
            self._ping_sent = now
        if self._ping_sent is not None:
            deadline = self._ping_sent + PING_TIMEOUT
            if now >= deadline:
                raise TimeoutError(f"no answer to PING within {PING_TIMEOUT}s")
        else:
            deadline = self._last_heard + PING_INTERVAL
        message = await self.pubsub.get_message(timeout=max(deadline - now, 0.01))
        if self.fault is not None:
            raise self.fault
        if message is not None:
            self._last_heard = self._loop.time()
            self._ping_sent = None
        return message

    async def close(self) -> None:
        self.fail(ConnectionError("pub/sub connection closed"))
        with contextlib.suppress(RedisError, OSError):
            await self.pubsub.aclose()


class RedisBroker(Broker):
    """Redis pub/sub: a channel per user; one pub/sub connection and one listener task
    per process, fanning out to the local subscriptions. Its status is "degraded"
    until start() has connected and whenever Redis cannot be reached.

    A user's channel is subscribed when their first local subscription opens and
    unsubscribed when the last one closes. All SUBSCRIBE/UNSUBSCRIBE commands are
    sent under one lock, so their order on the wire matches the order of those
    decisions; waiting for Redis' confirmation happens outside it.
    """

    name = "redis"

    def __init__(self, url: str, *, channel_prefix: str = "cloudbuffer:user:") -> None:
        super().__init__()
        self._prefix = channel_prefix
        # One channel every worker listens to, whatever users it holds: account
        # changes (server/principal_cache.py). Next to the user channels' prefix.
        self._accounts_channel = channel_prefix.rstrip(":").rpartition(":")[0] + ":accounts"
        # Not a user channel; unique per process so two workers never share it.
        self._control_channel = f"cloudbuffer:broker:{uuid.uuid4().hex}"
        common = dict(socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                      socket_keepalive=True, decode_responses=True, encoding_errors="replace")
        # PUBLISH is not allowed on a pub/sub connection: publishing uses a normal pool.
        # One quick retry covers a pooled connection that died since its last use.
        # A blocking pool: when a burst of publishes (a thousand sockets closing at
        # once, each announcing presence) needs more than PUBLISH_CONNECTIONS, the
        # rest wait for a free connection instead of failing (the default pool
        # raised MaxConnectionsError in the benchmarks).
        self._publisher = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            url, max_connections=PUBLISH_CONNECTIONS, timeout=SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 1),
            health_check_interval=PUBLISH_HEALTH_CHECK, client_name="cloudbuffer-publish", **common))
        # The pub/sub connection must never be retried or reconnected by redis-py:
        # its reconnect would quietly re-subscribe and hide the events lost in between.
        # No retryable errors (even "0 retries" reconnects once) means every fault
        # reaches the supervisor, which reconnects itself and sends the RESYNC.
        self._subscriber = aioredis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0, supported_errors=()), health_check_interval=0,
            client_name="cloudbuffer-pubsub", **common)
        self._lock = asyncio.Lock()
        self._session: _Session | None = None
        self._listener: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self._publish_failed = False
        self._stopped = False
        self._warn_listener = _RateLimitedWarning()
        self._warn_publish = _RateLimitedWarning()

    @property
    def hears_account_changes(self) -> bool:
        session = self._session
        return session is not None and session.live and session.fault is None

    @property
    def status(self) -> str:
        live = self._session is not None and self._session.live
        return "ok" if live and not self._publish_failed else "degraded"

    def _channel(self, user_id: int) -> str:
        return self._prefix + str(user_id)

    def _user_id(self, channel: str) -> int | None:
        if channel.startswith(self._prefix):
            with contextlib.suppress(ValueError):
                return int(channel[len(self._prefix):])
        return None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._supervise(), name="cloudbuffer-broker-listener")
        # Wait for the first connection so a healthy start reports "ok" at once, but
        # never longer than one attempt: with Redis down the app still starts
        # (degraded), and the subscriptions get their RESYNC once Redis is back.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_TIMEOUT + PING_INTERVAL + PING_TIMEOUT):
                await self._first_attempt.wait()

    async def stop(self) -> None:
        self._stopped = True
        listener, self._listener = self._listener, None
        while listener is not None and not listener.done():
            # Repeated, because a cancellation landing in one of redis-py's socket
            # writes can be lost on Python 3.11 (see _watch).
            listener.cancel()
            await asyncio.wait([listener], timeout=0.1)
        if listener is not None and not listener.cancelled() and listener.exception():
            logger.error("Redis listener ended with an error", exc_info=listener.exception())
        for client in (self._publisher, self._subscriber):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def publish(self, user_id: int, message: str) -> None:
        # Shielded for the reason given below for the hooks: a live socket's
        # handler publishes while it opens and closes, and a cancellation lost
        # inside redis-py would leave that handler serving a socket that is gone.
        await asyncio.shield(self._publish(self._channel(user_id), message))

    async def publish_account_change(self, user_id: int) -> None:
        self._account_changed(user_id)  # this worker at once, the others through Redis
        await asyncio.shield(self._publish(self._accounts_channel, str(user_id)))

    async def _publish(self, channel: str, message: str) -> None:
        try:
            await self._publisher.publish(channel, message)
        except (RedisError, OSError) as exc:
            # The post itself is stored; its push arrives with the RESYNC that
            # follows the listener's reconnect. Never log `message`.
            self._publish_failed = True
            self._warn_publish("Redis publish failed (%s); live updates are degraded", _describe(exc))
            return
        self._publish_failed = False

    # Both hooks run their Redis work in a shielded task. Sockets usually close by
    # being cancelled, and a half-sent (UN)SUBSCRIBE would leave the channel state
    # wrong. It also keeps the caller's cancellation intact: redis-py writes with
    # asyncio.wait_for, which on Python 3.11 can swallow a cancellation.

    async def _watch(self, user_id: int) -> None:
        await asyncio.shield(self._subscribe_if_needed(user_id))

    async def _unwatch(self, user_id: int) -> None:
        await asyncio.shield(self._unsubscribe_if_unused(user_id))

    async def _subscribe_if_needed(self, user_id: int) -> None:
        channel = self._channel(user_id)
        async with self._lock:
            session = self._session
            if self._stopped or session is None or session.fault is not None:
                return  # Redis is down: the next session subscribes this user and RESYNCs
            ack = session.channels.get(channel)
            if ack is None:
                try:
                    (ack,) = await session.subscribe(channel)
                except (RedisError, OSError):
                    return  # the session is failed: same as above
        # Return once Redis confirmed the SUBSCRIBE -- so a snapshot read after
        # this cannot miss an event -- or once the session failed (RESYNC follows).
        # asyncio.wait, unlike await, never cancels the ack other sockets share.
        await asyncio.wait([ack])

    async def _unsubscribe_if_unused(self, user_id: int) -> None:
        channel = self._channel(user_id)
        async with self._lock:
            session = self._session
            if user_id in self._local or session is None or channel not in session.channels:
                return
            with contextlib.suppress(RedisError, OSError):
                await session.unsubscribe(channel)

    async def _supervise(self) -> None:
        """The listener task: keep one session alive, reconnecting with backoff."""
        delay = BACKOFF_MIN
        while not self._stopped:
            session = _Session(self._subscriber.pubsub())
            try:
                control_ack = await session.open(self._control_channel)
                await self._serve(session, control_ack)
            except (RedisError, OSError) as exc:  # OSError includes TimeoutError
                self._warn_listener("Redis pub/sub connection lost (%s); reconnecting", _describe(exc))
            except Exception:
                logger.exception("Redis listener failed; restarting it")
            finally:
                # Synchronously, so a second cancellation (see stop) cannot skip it:
                # once failed, the session sends nothing more and its waiters are woken.
                session.fail(ConnectionError("pub/sub connection closed"))
                if self._session is session:
                    self._session = None
                await session.close()
                self._first_attempt.set()
            if session.live:
                delay = BACKOFF_MIN  # it had been working: reconnect quickly
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _serve(self, session: _Session, control_ack: asyncio.Future[bool]) -> None:
        async with self._lock:
            self._session = session
            channels = [self._accounts_channel] + [self._channel(user_id) for user_id in self._local]
            acks = [control_ack] + await session.subscribe(*channels)
        await self._pump(session, until=lambda: all(ack.done() for ack in acks))
        if session.fault is not None:
            raise session.fault
        # Every channel with a local subscriber is confirmed on the new connection,
        # so a snapshot read from now on cannot miss an event: tell everyone to.
        session.live = True
        # Account changes published while no session listened were not heard.
        self._account_changes_missed()
        self._publish_failed = False  # Redis is answering again
        self._first_attempt.set()
        if self._local:
            logger.info("Redis pub/sub connected; resyncing %d local users", len(self._local))
        self._resync_all()
        await self._pump(session)

    async def _pump(self, session: _Session, until=lambda: False) -> None:
        while not until():
            message = await session.next_message()
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                user_id = self._user_id(message["channel"])
                if user_id is not None:
                    self._deliver(user_id, message["data"])
                elif message["channel"] == self._accounts_channel:
                    with contextlib.suppress(ValueError):
                        self._account_changed(int(message["data"]))
            elif kind == "subscribe":
                session.acknowledged(message["channel"])


def create_broker(redis_url: str | None) -> Broker:
    return RedisBroker(redis_url) if redis_url else MemoryBroker()
