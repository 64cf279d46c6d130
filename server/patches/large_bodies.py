"""Receiving large HTTP/1.1 request bodies in 256 KiB pieces.

Hypercorn reads a connection 64 KiB at a time as the bytes trickle in, and
passes every piece through h11, which copies it into its buffer and out again
as a Data event, before it becomes an ASGI message. For a 1 GiB upload that
is tens of thousands of rounds and four copies in user space, all on the
event loop that also carries every live socket's pushes (#4 and #6 in
docs/benchmarks.md). LargeBodyTCPServer is Hypercorn's TCPServer with its
read loop replaced:

- While a body with a known length has more than LOWAT_FROM bytes to come,
  the socket's SO_RCVLOWAT asks the kernel to wake the loop only once up to
  PIECE bytes are waiting (asyncio's transport reads at most that per
  recv()), and each read takes the whole piece.
  Should a sender pause with less than that waiting, the loop goes back to
  waking on any byte after PATIENCE seconds, for the rest of that body, so
  slow clients are read (and judged by the upload's idle and min-rate
  guards) as before.
- A body piece that h11 would only copy through goes straight to the
  request's stream, and h11's count of bytes still to come is lowered by
  its length: h11 still sees the request line, headers, the end of the
  body and whatever follows on the connection.

Everything else (HTTP/2, TLS, chunked bodies, WebSockets, pipelined bytes
after a body) takes Hypercorn's path unchanged.

Changes: the module-level name `hypercorn.asyncio.run.TCPServer`; private
names of h11 (the connection's `_reader` and `_receive_buffer`, the reader's
`_remaining`) and Hypercorn (the protocol's `stream`, `_handle_events`).

Checked against: hypercorn 0.18.0, h11 0.16.0.
"""
from __future__ import annotations

import asyncio
import socket

import h11
from h11._readers import ContentLengthReader
from hypercorn.asyncio import tcp_server as hypercorn_tcp_server
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body
from hypercorn.protocol.h11 import H11Protocol

from .base import Patch

# Bytes per wake-up while a large body arrives: asyncio's recv() size. 1 MiB
# cost no less CPU per GiB (0.66-0.82 s of the loop vs 0.76) but held 10 MiB
# more per upload in Hypercorn's queue of ten ASGI messages, and each piece
# keeps the loop from the live sockets four times as long.
PIECE = 256 * 1024
LOWAT_FROM = 128 * 1024  # below this many bytes to come, wake on any byte
PATIENCE = 0.2  # seconds to wait for a whole piece before taking what is there
_STREAM_ID = 1  # h11 has one stream per connection; Hypercorn numbers it 1

# Resets and SSL errors are OSErrors; since 3.11 asyncio's TimeoutError is the builtin one.
_READ_ERRORS = (OSError, TimeoutError)


def problem() -> str | None:
    """What h11 and Hypercorn no longer have of the private names the fast path uses."""
    from hypercorn.asyncio import run as hypercorn_run

    if getattr(hypercorn_run, "TCPServer", None) not in (hypercorn_tcp_server.TCPServer, LargeBodyTCPServer):
        return "hypercorn.asyncio.run no longer serves connections with TCPServer"
    probe = h11.Connection(h11.SERVER)
    if not (hasattr(probe, "_reader") and hasattr(probe, "_receive_buffer")):
        return "h11's Connection has no _reader or _receive_buffer"
    if not hasattr(ContentLengthReader(1), "_remaining"):
        return "h11's ContentLengthReader has no _remaining"
    if not hasattr(H11Protocol, "_handle_events"):
        return "Hypercorn's H11Protocol has no _handle_events"
    return None


def _body_reader(protocol) -> ContentLengthReader | None:
    """h11's reader of the current request body, if the connection is
    HTTP/1.1 receiving a body of known length."""
    h11_protocol = getattr(protocol, "protocol", None)
    if not isinstance(h11_protocol, H11Protocol):
        return None
    reader = getattr(h11_protocol.connection, "_reader", None)
    return reader if isinstance(reader, ContentLengthReader) else None


def _to_come(protocol, reader: ContentLengthReader) -> int:
    """Bytes of that body that have not reached the server yet."""
    return reader._remaining - len(protocol.protocol.connection._receive_buffer)


async def _hand_over_body(protocol, reader: ContentLengthReader, data: bytes) -> bool:
    """Give `data` to the request's stream as body bytes, bypassing h11, if
    `reader` still reads this body, all of `data` is body and h11 holds
    nothing unread. False: nothing was done, the caller feeds `data` to h11
    as usual."""
    h11_protocol = protocol.protocol
    connection = h11_protocol.connection
    if (not data  # b"" is the end of the connection: h11 must see it
            or h11_protocol.stream is None or connection._reader is not reader
            or connection._receive_buffer or connection.their_state is not h11.SEND_BODY
            or connection.they_are_waiting_for_100_continue
            or len(data) > reader._remaining):
        return False
    reader._remaining -= len(data)
    await h11_protocol.stream.handle(Body(stream_id=_STREAM_ID, data=data))
    if reader._remaining == 0:
        # h11 now answers EndOfMessage and goes on to the next request.
        await h11_protocol._handle_events()
    return True


class LargeBodyTCPServer(hypercorn_tcp_server.TCPServer):
    async def _read_data(self) -> None:
        sock = self.writer.get_extra_info("socket")
        fast = (sock is not None and self.writer.get_extra_info("ssl_object") is None
                and hasattr(socket, "SO_RCVLOWAT"))
        lowat = 1
        slow_body = None  # the body whose sender let PATIENCE pass: read it as Hypercorn does
        reader = data = None
        while not self.reader.at_eof():
            try:
                if fast:
                    # Looked up before the bytes arrive: h11 moves on to
                    # another body only when this loop feeds it (and
                    # _hand_over_body checks that it did not).
                    reader = _body_reader(self.protocol)
                    to_come = _to_come(self.protocol, reader) if reader is not None else 0
                    wanted = min(to_come, PIECE) if to_come > LOWAT_FROM and reader is not slow_body else 1
                    if wanted != lowat:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, wanted)
                        lowat = wanted
                if lowat > 1:
                    try:
                        data = await asyncio.wait_for(self.reader.read(lowat), PATIENCE)
                    except TimeoutError:
                        # Fewer than `lowat` bytes came in PATIENCE: wake on
                        # any byte for the rest of this body (Linux re-checks
                        # readiness at once).
                        slow_body = reader
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                        lowat = 1
                        continue
                else:
                    data = await asyncio.wait_for(self.reader.read(hypercorn_tcp_server.MAX_RECV),
                                                  self.config.read_timeout)
            except _READ_ERRORS:  # setsockopt on a socket the client reset, too
                break
            # Most reads (a WebSocket's, a request head) are no body: no call.
            if reader is None or not await _hand_over_body(self.protocol, reader, data):
                await self.protocol.handle(RawData(data))
        if fast and data and self.reader.at_eof() and _body_reader(self.protocol) is not None:
            # The client's end came in the same read as its last bytes, so
            # no b"" will follow: tell h11, which answers a body cut short
            # with 400 as on Hypercorn's own path.
            await self.protocol.handle(RawData(b""))
        await self.protocol.handle(Closed())


def apply(settings: dict) -> None:
    """Make Hypercorn's workers serve connections with LargeBodyTCPServer."""
    from hypercorn.asyncio import run as hypercorn_run

    hypercorn_run.TCPServer = LargeBodyTCPServer


PATCH = Patch("large_bodies", {"hypercorn": "0.18.0", "h11": "0.16.0"}, problem, apply)
