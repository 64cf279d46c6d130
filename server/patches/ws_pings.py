"""One task per worker pings every open WebSocket, instead of one per socket.

Changes: Hypercorn's WebSocket stream spawns a ping task per socket in
`WSStream._accept`, sleeping websocket_ping_interval between pings. This
patch points the module-level name `WSStream` of Hypercorn's HTTP/1.1 and
HTTP/2 protocols at a subclass whose `_accept` is Hypercorn's, edited so that
the stream joins the event loop's ping rounds (server/rounds.py) instead.
Besides the memory, Hypercorn's ping loop only looked at `closed` after
sleeping the interval (20 s) and the connection's task group waited for it:
every closed socket kept its connection objects for up to 20 s, and a
shutdown with sockets open sat out the whole graceful timeout
(tests/test_serving.py).

Buys: #3, memory per idle socket (docs/benchmarks.md, "Patches, with and
without").

Checked against: hypercorn 0.18.0 (the copied `_accept` is compared with the
installed one by its source's digest).
"""
from __future__ import annotations

import asyncio
import time
import weakref

from hypercorn.protocol import h2 as h2_protocol
from hypercorn.protocol import h11 as h11_protocol
from hypercorn.protocol import ws_stream
from wsproto.events import Ping

from ..rounds import Rounds
from .base import Patch, changed_source, missing_attributes

NAME = "ws_pings"
PINGS_BETWEEN_YIELDS = 32  # pings sent back to back before other work gets a turn
# Hypercorn 0.18.0's code that SweptPingsWSStream._accept is an edited copy of.
_COPIED = {"WSStream._accept": "144623ad2e13fc56"}


async def ping_all(streams: list) -> None:
    for count, stream in enumerate(streams, 1):
        try:
            await stream.ping()
        except Exception:  # noqa: BLE001 - a failed ping closes its own stream; the others go on
            pass
        if count % PINGS_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)


_ping_rounds: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Rounds]" = weakref.WeakKeyDictionary()


def _ping_rounds_of_this_loop(interval: float) -> Rounds:
    """The pings of every open WebSocket of this event loop, one task for all
    of them."""
    loop = asyncio.get_running_loop()
    rounds = _ping_rounds.get(loop)
    if rounds is None:
        rounds = _ping_rounds[loop] = Rounds(interval, ping_all, "cloudbuffer-ws-pings")
    return rounds


class SweptPingsWSStream(ws_stream.WSStream):
    """Hypercorn's WebSocket stream, pinged by the loop's ping rounds instead
    of a ping task of its own."""

    _closed = False
    _pings: Rounds | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = value
        if value and self._pings is not None:
            self._pings.discard(self)
            self._pings = None

    async def ping(self) -> None:
        if not self.closed:
            await self._send_wsproto_event(Ping())

    async def _accept(self, message) -> None:
        # Hypercorn's _accept, except that the stream joins the ping rounds
        # where Hypercorn would spawn its ping task.
        self.state = ws_stream.ASGIWebsocketState.CONNECTED
        status_code, headers, self.connection = self.handshake.accept(
            message.get("subprotocol"), message.get("headers", [])
        )
        await self.send(ws_stream.Response(stream_id=self.stream_id, status_code=status_code, headers=headers))
        await self.config.log.access(self.scope, {"status": status_code, "headers": []},
                                     time.time() - self.start_time)
        if self.config.websocket_ping_interval is not None and not self.closed:
            self._pings = _ping_rounds_of_this_loop(self.config.websocket_ping_interval)
            self._pings.add(self)


def problem() -> str | None:
    for protocol in (h11_protocol, h2_protocol):
        if getattr(protocol, "WSStream", None) not in (ws_stream.WSStream, SweptPingsWSStream):
            return f"{protocol.__name__} no longer builds its WebSocket streams from WSStream"
    return (missing_attributes(ws_stream, ("ASGIWebsocketState", "Response"), "hypercorn.protocol.ws_stream")
            or missing_attributes(ws_stream.WSStream, ("_send_wsproto_event",), "WSStream")
            or changed_source(_COPIED, {"WSStream._accept": ws_stream.WSStream._accept}))


def apply(settings) -> None:
    h11_protocol.WSStream = SweptPingsWSStream
    h2_protocol.WSStream = SweptPingsWSStream


PATCH = Patch(NAME, {"hypercorn": "0.18.0", "wsproto": "1.3.2"}, problem, apply)
