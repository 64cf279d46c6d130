"""Live sockets decline permessage-deflate unless CLOUDBUFFER_WS_COMPRESSION is on.

Changes: Hypercorn accepts permessage-deflate whenever a client offers it,
and every browser does. A compressed socket keeps a zlib compressor and
decompressor for its whole life, for messages that are small JSON. Hypercorn
has no option for this; its WebSocket stream builds the extension from the
module-level name `hypercorn.protocol.ws_stream.PerMessageDeflate`, which
this patch points at an extension that turns every offer down.

Buys: #3, memory per idle socket with a browser-like deflate offer
(docs/benchmarks.md, "Patches, with and without").

Checked against: hypercorn 0.18.0, wsproto 1.3.2.
"""
from __future__ import annotations

import inspect

from hypercorn.protocol import ws_stream
from wsproto.extensions import PerMessageDeflate

from .base import Patch

NAME = "ws_compression"


class DeclinedDeflate(PerMessageDeflate):
    """permessage-deflate that turns every offer down."""

    def accept(self, offer: str) -> None:
        return None


def problem() -> str | None:
    current = getattr(ws_stream, "PerMessageDeflate", None)
    if current not in (PerMessageDeflate, DeclinedDeflate):
        return "hypercorn.protocol.ws_stream no longer builds wsproto's PerMessageDeflate by that name"
    if list(inspect.signature(PerMessageDeflate.accept).parameters) != ["self", "offer"]:
        return "wsproto's PerMessageDeflate.accept is not accept(self, offer)"
    return None


def apply(settings) -> None:
    ws_stream.PerMessageDeflate = PerMessageDeflate if settings.ws_compression else DeclinedDeflate


PATCH = Patch(NAME, {"hypercorn": "0.18.0", "wsproto": "1.3.2"}, problem, apply)
