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
What the handshake reads comes from the same code requests use: Quart's
own Websocket object, built for the handshake alone (its headers, cookies
and Host), auth.origin_is_allowed and auth.principal_from_credentials.
A socket this module does not serve is Quart's to answer: any other path
(Quart's routing, a 404), and a handshake refused before the accept (an
APIError, or an unexpected error), which is handed to Quart's /ws route
(`_refuse`) so that the app's own error path (errors.py) answers it, as it
answers requests. Quart's own root_path split is private (quart.asgi),
hence _app_path.
"""
from __future__ import annotations

import asyncio
import logging
import secrets

from quart import Quart, Websocket, current_app, websocket
from werkzeug.datastructures import Headers

from .. import __version__, buffer, e2e, ratelimits
from ..e2e_blobs import b64u_decode
from ..asgi_socket import ASGISocket, Disconnected
from ..auth import (Principal, bearer_from_header, origin_is_allowed, origin_of, principal_from_credentials, public,
                    principal_still_valid, session_cookie_name)
from ..broker import RESYNC
from ..errors import APIError, RateLimited, internal_error
from . import protocol
from .keepalive import KeepAlive
from .protocol import (CLOSE_INTERNAL_ERROR, CLOSE_POLICY, CLOSE_REVOKED, CLOSE_TRY_AGAIN, SNAPSHOT, ClientState,
                       Close, Refused)
from ..services import services

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
        await self.send(protocol.devices(await services().presence.list(self.principal.user_id)))

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


REFUSAL = "cloudbuffer.refusal"  # the scope key that hands a refused handshake's error to Quart


def serve_live_sockets(app: Quart, keep_alive: KeepAlive) -> None:
    """Serve /ws in front of the app (LiveSocketsFirst around app.asgi_app),
    and give Quart the /ws route on which it answers refused handshakes."""
    app.add_websocket(LIVE_PATH, "live_socket", _refuse)
    app.asgi_app = LiveSocketsFirst(app, app.asgi_app, keep_alive)


# Public and unlimited on purpose: it serves nobody, it only answers a
# handshake that _authenticate (credentials, Origin) or the cap already refused.
@public
@ratelimits.rate_exempt
async def _refuse() -> None:
    """Quart's /ws route: only ever called with a handshake LiveSocketsFirst
    refused; raising its error sends it down the app's error path, which
    answers it as JSON (errors.py), before any accept."""
    raise websocket.scope.pop(REFUSAL, None) or internal_error()


class LiveSocketsFirst:
    """ASGI middleware around Quart (app.asgi_app): live sockets at /ws are
    served here, straight on ASGI (server/asgi_socket.py says why), and all
    else goes on to Quart: HTTP, WebSockets to other paths (Quart's routing
    answers them 404), and a handshake refused before the accept, handed to
    Quart's /ws route with its error. An unexpected error after the accept
    is logged here and closes the socket with 1011."""

    def __init__(self, app, asgi_app, keep_alive: KeepAlive) -> None:
        self.app = app
        self.asgi_app = asgi_app
        self.keep_alive = keep_alive

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket" or _app_path(scope) != LIVE_PATH:
            await self.asgi_app(scope, receive, send)
            return
        socket = ASGISocket(scope, receive, send)
        async with self.app.app_context():
            try:
                await _handshake_and_serve(socket, self.keep_alive)
                return
            except Exception as error:
                if socket.accepted:
                    log.exception("unhandled error on a websocket")
                    await socket.close(CLOSE_INTERNAL_ERROR, "internal error")
                    return
                refusal = error
        if not socket.closed:
            scope[REFUSAL] = refusal
            await self.asgi_app(scope, receive, send if _can_answer_http(scope) else _policy_close(send))


def _can_answer_http(scope) -> bool:
    return "websocket.http.response" in (scope.get("extensions") or {})


def _policy_close(send):
    """Where the server cannot send an HTTP answer to a handshake, Quart
    closes it with 1000; a refusal is a policy close (1008)."""

    async def refusing(message) -> None:
        if message["type"] == "websocket.close":
            message = {**message, "code": CLOSE_POLICY}
        await send(message)

    return refusing


def _app_path(scope) -> str:
    """The path below the app's mount point, as Quart routes it: Hypercorn
    puts its root_path in front of the path and also hands it over."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if not root_path:
        return path
    return path.removeprefix(root_path) if path.startswith(root_path) and path != root_path else ""


def _handshake(scope) -> Websocket:
    """The handshake as Quart reads a request: its Headers, and so its
    cookies (all Cookie headers, werkzeug's sansio parser, which leaves a
    Latin-1 byte another app on the host may have set alone) and its Host
    (default ports dropped, a malformed one empty, the server's address
    when there is none). Kept only while the socket is authenticated: an
    idle socket holds none of it (tests/live/test_memory.py)."""
    headers = Headers()
    for name, value in scope.get("headers", ()):
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return current_app.websocket_class(
        LIVE_PATH, scope.get("query_string", b""), scope.get("scheme", "ws"), headers, scope.get("root_path", ""),
        scope.get("http_version", "1.1"), list(scope.get("subprotocols", ())),
        # The socket itself is ASGISocket's; this object only describes the handshake.
        _not_here, _not_here, _not_here, _not_here, scope=scope,
    )


async def _not_here(*args) -> None:
    raise RuntimeError("the live socket is served by ASGISocket, not Quart's Websocket")


async def _authenticate(socket: ASGISocket) -> Principal:
    """The socket's principal, or an APIError refusing the handshake."""
    handshake = _handshake(socket.scope)
    headers = handshake.headers
    if headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in headers:
        # Hypercorn answers body bytes sent before the accept with a 400 and
        # then never tells the app the client is gone: the socket would be
        # served, unreachable, until the server stops.
        raise APIError(400, "bad_request", "A WebSocket handshake carries no body.")
    origin = headers.get("Origin")
    token = bearer_from_header(headers.get("Authorization", ""))
    own_origin = origin_of(handshake.scheme, handshake.host)
    if origin is not None and not origin_is_allowed(origin, own_origin):
        raise APIError(403, "cross_origin", "WebSocket connections from other sites are not allowed.")
    if origin is None and token is None:
        raise APIError(403, "origin_required", "A browser WebSocket must send Origin; scripts use a bearer token.")
    cookie = handshake.cookies.get(session_cookie_name()) if token is None else None
    principal = await principal_from_credentials(token, cookie)
    if principal is None:
        raise APIError(401, "unauthorized", "Log in or send an API token to open the live socket.")
    return principal


async def _handshake_and_serve(socket: ASGISocket, keep_alive: KeepAlive) -> None:
    principal = await _authenticate(socket)
    user_id = principal.user_id
    counts = services().live_counts
    presence = services().presence
    settings = services().settings
    cap = settings.ws_max_per_user
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
        async with services().broker.subscribe(user_id) as subscription:
            conn.subscription = subscription
            await conn.send(protocol.hello(__version__, NODE_ID, conn.device, settings.max_text_bytes))
            await conn.send_snapshot()
            await buffer.publish(user_id, {"type": "_presence"})
            # The handler pumps events to the socket itself; reading the client is
            # the socket's only task of its own. The reader's end and a close the
            # worker asks for (shutdown, a silent heartbeat, a session gone) wake
            # the pump through the subscription, so an idle socket waits on its
            # queue alone (#3 in docs/benchmarks.md).
            reader = asyncio.create_task(_read_client(conn, protocol.max_message_chars(settings.max_text_bytes)))
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
