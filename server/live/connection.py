"""The live socket's connection: the ASGI WebSocket, its handshake, and the
pump that serves it until it closes.

Order on connect matters: authenticate and check Origin before accepting,
subscribe to the user's events, and only then read the snapshot, so a change
committed in between arrives as an event (clients drop events whose seq is not
newer than what they have). What messages mean is protocol.py's.

Not a Quart websocket route: measured in one process with 600 idle sockets,
Quart's route holds 13.7 KiB per socket where this ASGI path holds 1.0 KiB
for the same accept-and-wait (its Websocket object and Headers copy, the
websocket context, an asyncio.Queue, three tasks), which would take benchmark
#3 to ~34.5 KiB per socket, past its bounds (bench/findings.md, session 7).
What the handshake reads comes from the same code requests use: werkzeug's
sansio cookie and Host parsers (those behind Quart's request.cookies and
request.host), auth.origin_is_allowed and auth.principal_from_credentials;
refusals are errors.APIError with the API's JSON shape. The app's error
handlers themselves read Quart's `request`, which a socket outside Quart
has not got; and Quart's own root_path split is private (quart.asgi), hence
_app_path.
"""
from __future__ import annotations

import asyncio
import logging
import secrets

from quart import current_app
from werkzeug.sansio.http import parse_cookie
from werkzeug.sansio.utils import get_host

from .. import __version__, buffer, e2e, ratelimits
from ..e2e_blobs import b64u_decode
from ..asgi_socket import ASGISocket, Disconnected
from ..auth import (Principal, bearer_from_header, origin_is_allowed, origin_of, principal_from_credentials,
                    principal_still_valid, session_cookie_name)
from ..broker import RESYNC
from ..errors import APIError, RateLimited, internal_error
from . import protocol
from .keepalive import KeepAlive
from .protocol import (CLOSE_INTERNAL_ERROR, CLOSE_REVOKED, CLOSE_TRY_AGAIN, SNAPSHOT, ClientState, Close,
                       Refused)

log = logging.getLogger(__name__)
# Which worker process holds a socket: helps operators (and tests) see how
# sockets spread across workers and hosts without exposing pids.
NODE_ID = secrets.token_hex(4)

LIVE_PATH = "/ws"  # the one WebSocket; not a Quart route (LiveSocketsFirst)
PRESENCE_WAIT = 1.0  # seconds a connecting socket waits for presence at most


class _WakeUp:
    def __repr__(self) -> str:
        return "WAKE_UP"


# Put into a socket's subscription when its reader ended or its worker asks
# it to close (LiveConnection.closing): the pump, which runs in the socket's
# own handler, looks at both and acts.
WAKE_UP = _WakeUp()


class LiveConnection(ClientState):
    # One per open socket, alive as long as it is: no instance dict.
    __slots__ = ("principal", "socket", "conn_id", "subscription", "closing", "__weakref__")

    def __init__(self, principal: Principal, socket: ASGISocket) -> None:
        super().__init__()
        self.principal = principal
        self.socket = socket
        self.conn_id = secrets.token_hex(8)
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

    async def send(self, message: dict) -> None:
        await self.socket.send(protocol.encode(message))

    async def send_snapshot(self) -> None:
        await self.send(await buffer.snapshot(self.principal.user_id))

    async def send_devices(self) -> None:
        await self.send(protocol.devices(await current_app.presence.list(self.principal.user_id)))

    async def store_text(self, text: "str | protocol.EncryptedText") -> int:
        """A `set`'s write: the user's write budget, then the buffer."""
        try:
            await ratelimits.spend_write(ratelimits.key_of_user(self.principal.user_id))
            if isinstance(text, protocol.EncryptedText):
                sealed = e2e.sealed_from(text.encoding, text.key, text.meta)
                body = b64u_decode(text.ciphertext, "`ciphertext`")
                return (await buffer.store_encrypted_text(self.principal, sealed, body)).seq
            return (await buffer.store_text(self.principal, text)).seq
        except APIError as error:
            raise Refused(error.code, error.message,
                          error.retry_after if isinstance(error, RateLimited) else None) from None


class LiveSocketsFirst:
    """ASGI middleware around Quart (app.asgi_app): WebSockets are served
    here, straight on ASGI (server/asgi_socket.py says why), and HTTP goes
    on to Quart. /ws is the only WebSocket; any other path is a 404.
    Refusals are APIErrors, answered as JSON like any API error; unexpected
    errors are logged here: before the handshake is answered the client gets
    a 500 with the usual JSON error, after it a close with 1011."""

    def __init__(self, app, asgi_app, keep_alive: KeepAlive) -> None:
        self.app = app
        self.asgi_app = asgi_app
        self.keep_alive = keep_alive

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            await self.asgi_app(scope, receive, send)
            return
        socket = ASGISocket(scope, receive, send)
        async with self.app.app_context():
            try:
                if _app_path(scope) != LIVE_PATH:
                    raise APIError(404, "not_found", f"The live socket is at {LIVE_PATH}.")
                await _handshake_and_serve(socket, self.keep_alive)
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


async def _handshake_and_serve(socket: ASGISocket, keep_alive: KeepAlive) -> None:
    principal = await _authenticate(socket)
    user_id = principal.user_id
    counts = current_app.live_counts
    presence = current_app.presence
    settings = current_app.config["CLOUDBUFFER"]
    cap = settings["WS_MAX_PER_USER"]
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
        # idle socket (#3 in docs/benchmarks.md; tests/live/test_memory.py
        # holds the figure). Work that ends before the socket idles
        # (_authenticate) or runs only per event (_pass_on) has its own function.
        async with current_app.broker.subscribe(user_id) as subscription:
            conn.subscription = subscription
            await conn.send(protocol.hello(__version__, NODE_ID, conn.device, settings["MAX_TEXT_BYTES"]))
            await conn.send_snapshot()
            await buffer.publish(user_id, {"type": "_presence"})
            # The handler pumps events to the socket itself; reading the client is
            # the socket's only task of its own. The reader's end and a close the
            # worker asks for (shutdown, a silent heartbeat, a session gone) wake
            # the pump through the subscription, so an idle socket waits on its
            # queue alone (#3 in docs/benchmarks.md).
            reader = asyncio.create_task(_read_client(conn, protocol.max_message_chars(settings["MAX_TEXT_BYTES"])))
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
        return True
    action = protocol.on_event(message, conn.principal.device_key)
    if action is protocol.FORWARD:
        # Already-encoded JSON: one encode per event, not per socket.
        await conn.socket.send(message)
    elif action is protocol.SEND_DEVICES:
        await conn.send_devices()
    elif action is protocol.REVOKED:
        await conn.socket.close(CLOSE_REVOKED, protocol.revoked_reason(message))
        return False
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


async def _read_client(conn: LiveConnection, max_chars: int) -> None:
    """Reads the client until it goes away or the socket is closed, then
    wakes the pump (a done-callback would cost a closure per socket)."""
    try:
        while True:
            reply = await protocol.answer(await conn.socket.receive(), conn, max_chars, conn.store_text)
            if reply is SNAPSHOT:
                await conn.send_snapshot()
            elif isinstance(reply, Close):
                await conn.socket.close(reply.code, reply.reason)
                return
            else:
                await conn.send(reply)
    except Disconnected:
        pass
    finally:
        conn.subscription.put_nowait(WAKE_UP)
