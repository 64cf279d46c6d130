"""The live socket: /ws pushes every buffer change to each of a user's devices.

Order on connect matters: authenticate and check Origin before accepting,
subscribe to the user's events, and only then read the snapshot, so a change
committed in between arrives as an event (clients drop events whose seq is not
newer than what they have). The protocol is documented in docs/protocol.md.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time

from quart import current_app
from werkzeug.sansio.http import parse_cookie
from werkzeug.sansio.utils import get_host

from .. import __version__, buffer, ratelimits
from ..asgi_socket import ASGISocket, Disconnected
from ..auth import (Principal, bearer_from_header, origin_is_allowed, origin_of, principal_from_credentials,
                    principal_still_valid, session_cookie_name)
from ..broker import RESYNC
from ..errors import APIError, RateLimited, internal_error
from ..presence import PRESENCE_REFRESH
from ..rounds import Rounds

log = logging.getLogger(__name__)
# Which worker process holds a socket: helps operators (and tests) see how
# sockets spread across workers and hosts without exposing pids.
NODE_ID = secrets.token_hex(4)

LIVE_PATH = "/ws"  # the one WebSocket; not a Quart route (LiveSocketsFirst)
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_REVOKED = 4401
HEARTBEAT_TIMEOUT = 60.0  # for clients that send `ping`: silence this long means a dead link
RATE_PER_SECOND = 10.0
RATE_BURST = 30.0
PRESENCE_WAIT = 1.0  # seconds a connecting socket waits for presence at most


def max_message_chars(max_text_bytes: int) -> int:
    """The largest message the protocol needs: a `set` of MAX_TEXT_BYTES of
    text (JSON may escape some characters, hence the factor 2)."""
    return 2 * max_text_bytes + 64 * 1024


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _WakeUp:
    def __repr__(self) -> str:
        return "WAKE_UP"


# Put into a socket's subscription when its reader ended or its worker asks
# it to close (LiveConnection.closing): the pump, which runs in the socket's
# own handler, looks at both and acts.
WAKE_UP = _WakeUp()


class LiveConnection:
    # One per open socket, alive as long as it is: no instance dict.
    __slots__ = ("principal", "socket", "conn_id", "bucket", "strikes", "last_heard", "heartbeats",
                 "subscription", "closing", "__weakref__")

    def __init__(self, principal, socket: ASGISocket) -> None:
        self.principal = principal
        self.socket = socket
        self.conn_id = secrets.token_hex(8)
        self.bucket = TokenBucket(RATE_PER_SECOND, RATE_BURST)
        self.strikes = 0
        self.last_heard = time.monotonic()
        self.heartbeats = False
        self.subscription = None
        self.closing: tuple[int, str] | None = None

    @property
    def device(self) -> dict[str, str]:
        """This device as presence and the `hello` message show it. Built
        when asked (a few times a minute at most), not kept per socket."""
        principal = self.principal
        return {"id": principal.device_key, "name": principal.device_name, "kind": principal.device_kind}

    def request_close(self, code: int, reason: str) -> None:
        if self.closing is None and self.subscription is not None:
            self.closing = (code, reason)
            self.subscription.put_nowait(WAKE_UP)

    async def send(self, message: dict | str) -> None:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message, separators=(",", ":")))

    async def send_snapshot(self) -> None:
        await self.send(await buffer.snapshot(self.principal.user_id))

    async def send_devices(self) -> None:
        devices = await current_app.presence.list(self.principal.user_id)
        await self.send({"type": "devices", "devices": devices})

    async def error(self, code: str, message: str, **extra) -> None:
        await self.send({"type": "error", "code": code, "message": message, **extra})


class LiveSocketsFirst:
    """ASGI middleware around Quart (app.asgi_app): WebSockets are served
    here, straight on ASGI (server/asgi_socket.py says why), and HTTP goes
    on to Quart. /ws is the only WebSocket; any other path is a 404.
    Refusals are APIErrors, answered as JSON like any API error; unexpected
    errors are logged here: before the handshake is answered the client gets
    a 500 with the usual JSON error, after it a close with 1011."""

    def __init__(self, app, asgi_app) -> None:
        self.app = app
        self.asgi_app = asgi_app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            await self.asgi_app(scope, receive, send)
            return
        socket = ASGISocket(scope, receive, send)
        async with self.app.app_context():
            try:
                if _app_path(scope) != LIVE_PATH:
                    raise APIError(404, "not_found", f"The live socket is at {LIVE_PATH}.")
                await _handshake_and_serve(socket)
            except Exception as error:
                if not isinstance(error, APIError) or socket.accepted:
                    log.exception("unhandled error on a websocket")
                    error = internal_error()
                if socket.accepted:
                    await socket.close(CLOSE_INTERNAL_ERROR, "internal error")
                elif not socket.closed:
                    await socket.reject(error.status, {"error": error.code, "message": error.message})


def _app_path(scope) -> str:
    """The path below the app's mount point, as Quart routes it: Hypercorn
    puts its root_path in front of the path and also hands it over."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if not root_path:
        return path
    return path.removeprefix(root_path) if path.startswith(root_path) and path != root_path else ""


async def _authenticate(socket: ASGISocket) -> Principal:
    """The socket's principal, or an APIError refusing the handshake."""
    headers = socket.request_headers()
    if headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers:
        # Hypercorn answers body bytes sent before the accept with a 400 and
        # then never tells the app the client is gone: the socket would be
        # served, unreachable, until the server stops.
        raise APIError(400, "bad_request", "A WebSocket handshake carries no body.")
    origin = headers.get("origin")
    token = bearer_from_header(headers.get("authorization", ""))
    # The Host as Quart read it: default ports dropped, a malformed one empty,
    # the server's address when there is none.
    scheme = socket.scope.get("scheme", "ws")
    own_origin = origin_of(scheme, get_host(scheme, headers.get("host"), socket.scope.get("server")))
    if origin is not None and not origin_is_allowed(origin, own_origin):
        raise APIError(403, "cross_origin", "WebSocket connections from other sites are not allowed.")
    if origin is None and token is None:
        raise APIError(403, "origin_required", "A browser WebSocket must send Origin; scripts use a bearer token.")
    # sansio's parser, as Quart's cookies use: werkzeug.http's re-decodes as
    # UTF-8 and raises on a Latin-1 byte another app on the host may have set.
    cookie = parse_cookie(headers.get("cookie", "")).get(session_cookie_name()) if token is None else None
    principal = await principal_from_credentials(token, cookie)
    if principal is None:
        raise APIError(401, "unauthorized", "Log in or send an API token to open the live socket.")
    return principal


async def _handshake_and_serve(socket: ASGISocket) -> None:
    principal = await _authenticate(socket)
    user_id = principal.user_id
    counts = current_app.live_counts
    presence = current_app.presence
    cap = current_app.config["CLOUDBUFFER"]["WS_MAX_PER_USER"]
    conn = LiveConnection(principal, socket)
    # Count this socket first, here and in presence, then compare the
    # totals with the cap: sockets opening at the same moment, on this
    # worker or another, then see each other (at worst all of them are
    # refused, never all let in). Presence is best effort; while Redis
    # cannot answer, this worker's own count decides.
    counts[user_id] = counts.get(user_id, 0) + 1
    served = False
    try:
        await _bounded(presence.add(user_id, conn.conn_id, conn.device))
        everywhere = await _bounded(presence.connections(user_id))
        await socket.accept()
        # Hypercorn wrote its access-log line at the accept; nothing reads them again.
        socket.forget_request_headers()
        if max(counts[user_id], everywhere or 0) > cap:
            await socket.close(CLOSE_TRY_AGAIN, f"too many connections (at most {cap} per user)")
            return
        served = True
        # Serving and the pump's loop run in this frame, not in functions of
        # their own: a frame suspended while the socket idles is kept by every
        # idle socket (#3 in docs/benchmarks.md). Work that ends before the
        # socket idles (_authenticate) or runs only per event (_pass_on) has
        # its own function.
        async with current_app.broker.subscribe(user_id) as subscription:
            conn.subscription = subscription
            await conn.send({"type": "hello", "version": __version__, "node": NODE_ID, "device": conn.device,
                             "max_text_bytes": current_app.config["CLOUDBUFFER"]["MAX_TEXT_BYTES"]})
            await conn.send_snapshot()
            await buffer.publish(user_id, {"type": "_presence"})
            # The handler pumps events to the socket itself; reading the client is
            # the socket's only task of its own. The reader's end and a close the
            # worker asks for (shutdown, a silent heartbeat, a session gone) wake
            # the pump through the subscription, so an idle socket waits on its
            # queue alone (#3 in docs/benchmarks.md).
            reader = asyncio.create_task(_read_client(conn))
            keep_alive = _KeepAlive.of_this_worker()
            keep_alive.add(conn)
            try:
                while await _pass_on(conn, await subscription.get(), reader):
                    pass
            finally:
                keep_alive.discard(conn)
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        counts[user_id] -= 1
        if counts[user_id] <= 0:
            del counts[user_id]
        await presence.remove(user_id, conn.conn_id, conn.device)
        if served:  # the user's other devices drop this one from their list
            await buffer.publish(user_id, {"type": "_presence"})


async def _pass_on(conn: LiveConnection, message, reader: asyncio.Task) -> bool:
    """Act on one wake-up of the socket's pump; False once the socket is done."""
    # Looked at on every wake-up, not only on WAKE_UP: a queue that
    # overflowed trades everything it held, a WAKE_UP too, for a RESYNC.
    if conn.closing is not None:
        await conn.socket.close(*conn.closing)
        return False
    if reader.done():
        if not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()
        return False
    if message is WAKE_UP:
        return True
    if message is RESYNC:
        if not await principal_still_valid(conn.principal):
            await conn.socket.close(CLOSE_REVOKED, "this device was logged out")
            return False
        await conn.send_snapshot()
        await conn.send_devices()
    elif message.startswith('{"type":"_'):
        event = json.loads(message)
        if event["type"] == "_presence":
            await conn.send_devices()
        elif event["type"] == "_revoke" and conn.principal.device_key in event["devices"]:
            await conn.socket.close(CLOSE_REVOKED, "this device was logged out")
            return False
    else:
        # Already-encoded JSON: one encode per event, not per socket.
        await conn.socket.send(message)
    return True


async def _bounded(presence_call):
    """A presence call that cannot hold up a connecting socket for long (a
    hung Redis); None when it ran out of time. Not asyncio.wait_for: on
    Python 3.11 it can swallow a cancellation (Hypercorn cancels the
    socket's task when it cuts connections at the end of a shutdown), and
    the handler would then serve on."""
    task = asyncio.ensure_future(presence_call)
    try:
        done, _ = await asyncio.wait([task], timeout=PRESENCE_WAIT)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        return None
    return task.result()


async def _read_client(conn: LiveConnection) -> None:
    """Reads the client until it goes away or the socket is closed, then
    wakes the pump (a done-callback would cost a closure per socket)."""
    try:
        while True:
            raw = await conn.socket.receive()
            conn.last_heard = time.monotonic()
            if len(raw) > max_message_chars(current_app.config["CLOUDBUFFER"]["MAX_TEXT_BYTES"]):
                await conn.socket.close(CLOSE_TOO_BIG, "message too big")
                return
            if not conn.bucket.take():
                conn.strikes += 1
                if conn.strikes > RATE_BURST:
                    await conn.socket.close(CLOSE_POLICY, "too many messages")
                    return
                await conn.error("rate_limited", f"Slow down: at most {RATE_PER_SECOND:g} messages per second.",
                                 retry_after=1)
                continue
            conn.strikes = 0
            try:
                message = parse_message(raw)
            except (TypeError, ValueError, RecursionError):
                await conn.error("invalid_json", "Messages are JSON objects with a type.")
                continue
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                await conn.error("invalid_message", "Messages are JSON objects with a type.")
                continue
            await _handle(conn, message)
    except Disconnected:
        pass
    finally:
        conn.subscription.put_nowait(WAKE_UP)


def _not_finite(value: str) -> float:
    raise ValueError(f"{value} is not a number JSON can carry")


def _finite_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        _not_finite(value)
    return number


def parse_message(raw: str | bytes):
    """A client message as JSON, refusing what JSON cannot send back: NaN,
    Infinity and numbers too big for a double (Python reads all three, and
    echoing one in a `pong` wrote invalid JSON). Too deep a nesting raises
    RecursionError, too long an integer ValueError."""
    return json.loads(raw, parse_constant=_not_finite, parse_float=_finite_float)


MAX_ECHO_CHARS = 256


def _echoable(value) -> bool:
    """Whether a client's `id` or `t` may be sent back as it came: a short
    string, a number or null, never a structure (a deep one could not be
    encoded again)."""
    return value is None or isinstance(value, (bool, int, float)) or (
        isinstance(value, str) and len(value) <= MAX_ECHO_CHARS)


async def _handle(conn: LiveConnection, message: dict) -> None:
    kind = message["type"]
    if kind == "ping":
        if not _echoable(message.get("t")):
            await conn.error("invalid_message", f"`t` is a string of up to {MAX_ECHO_CHARS} characters, "
                                                "a number or null.")
            return
        conn.heartbeats = True
        await conn.send({"type": "pong", "t": message.get("t")})
    elif kind == "set":
        text = message.get("text")
        if not isinstance(text, str) or not _echoable(message.get("id")):
            await conn.error("invalid_message", f"`set` needs a string `text`, and an `id` that is a string of up "
                                                f"to {MAX_ECHO_CHARS} characters, a number or null.")
            return
        try:
            await ratelimits.spend_write(ratelimits.key_of_user(conn.principal.user_id))
            item = await buffer.store_text(conn.principal, text)
        except APIError as error:
            extra = {"retry_after": error.retry_after} if isinstance(error, RateLimited) else {}
            await conn.error(error.code, error.message, **extra)
            return
        await conn.send({"type": "ack", "id": message.get("id"), "seq": item.seq})
    elif kind == "sync":
        await conn.send_snapshot()
    else:
        # Its type is the client's own input: named, but only so much of it.
        await conn.error("unknown_type", f"Unknown message type {kind[:40]!r}.")


class _KeepAlive:
    """The worker's periodic care of its sockets, every PRESENCE_REFRESH
    seconds each, by one task spread over the period (server/rounds.py):
    refresh their presence entries, drop a heartbeat client that went
    silent (a phone that lost its network without closing), and close the
    socket of a device whose session or token is gone. When the server
    starts shutting down it asks every socket to close with 1001. A task
    per socket did the same at ~1.3 KiB each (#3 in docs/benchmarks.md)."""

    def __init__(self, app) -> None:
        self.app = app
        # Read at each turn, so tests can shorten it.
        self.connections = Rounds(lambda: PRESENCE_REFRESH, self._visit, "cloudbuffer-live-keep-alive")
        self._shutdown_watch: asyncio.Task | None = None

    @staticmethod
    def of_this_worker() -> "_KeepAlive":
        app = current_app._get_current_object()
        keep_alive = getattr(app, "live_keep_alive", None)
        if keep_alive is None:
            keep_alive = app.live_keep_alive = _KeepAlive(app)
        return keep_alive

    def add(self, conn: LiveConnection) -> None:
        self.connections.add(conn)
        loop = asyncio.get_running_loop()
        if self._shutdown_watch is None or self._shutdown_watch.get_loop() is not loop:
            self._shutdown_watch = loop.create_task(self._close_all_at_shutdown(),
                                                    name="cloudbuffer-live-shutdown-watch")
        if self.app.shutting_down.is_set():
            conn.request_close(CLOSE_GOING_AWAY, "server shutting down")

    async def _close_all_at_shutdown(self) -> None:
        await self.app.shutting_down.wait()
        for conn in list(self.connections):
            conn.request_close(CLOSE_GOING_AWAY, "server shutting down")

    def discard(self, conn: LiveConnection) -> None:
        self.connections.discard(conn)

    async def _visit(self, connections: list[LiveConnection]) -> None:
        async with self.app.app_context():
            now = time.monotonic()
            for conn in connections:
                if conn.heartbeats and now - conn.last_heard > HEARTBEAT_TIMEOUT:
                    conn.request_close(CLOSE_POLICY, "no heartbeat")
            connections = [c for c in connections if c.closing is None]
            # A session ended where no event could reach us (`cloudbuffer user
            # passwd` on a server without Redis) still closes within one period.
            # With Redis, every revocation arrives as a `_revoke` event, and one
            # lost in an outage is caught by the check after the RESYNC; polling
            # the database for every socket every period would cost a query per
            # socket per 20 s -- the fan-out capacity benchmark (#2) hit that wall.
            if self.app.broker.name == "memory":
                valid = await asyncio.gather(*(principal_still_valid(c.principal) for c in connections))
                for conn, still_valid in zip(connections, valid):
                    if not still_valid:
                        conn.request_close(CLOSE_REVOKED, "this device was logged out")
                connections = [c for c in connections if c.closing is None]
            presence = self.app.presence  # batches one slice's refreshes into one round trip
            await asyncio.gather(*(presence.refresh(c.principal.user_id, c.conn_id, c.device)
                                   for c in connections))
