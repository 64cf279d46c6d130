"""gzip for the text the server writes itself: pages, CSS, JS, JSON, SVG.

Quart's own means (an after-request hook on the whole body) rather than an
ASGI middleware: only here is it known which answers are ours and safe to
compress. Left alone, on purpose:
  - someone's file (downloads, share links, previews): sent from disk as it
    was uploaded, often already compressed, and with byte ranges;
  - any ranged request or answer other than a plain 200;
  - answers to anything but GET (BREACH): the pages and JSON that carry a
    secret — a new API token, a new share link, a session's cookie — are
    all answers to a POST, and a compressed secret next to text an attacker
    chooses leaks through the length;
  - answers marked `no-store`, for the same reason (they are private).
The strong ETag of the identity body becomes weak for the gzipped one (RFC
9110 §8.8.1: a weak tag may stand for either encoding), so revalidation
still answers 304: If-None-Match compares weakly.
"""
from __future__ import annotations

import asyncio
import gzip

from quart import Response, request
from quart.wrappers.response import DataBody, FileBody

COMPRESSIBLE = frozenset({
    "text/html", "text/css", "text/javascript", "application/javascript", "text/plain",
    "application/json", "application/manifest+json", "application/problem+json", "image/svg+xml",
})
MIN_BYTES = 1024  # below this gzip's header costs more than it saves
THREAD_ABOVE = 256 * 1024  # bigger bodies are compressed off the event loop
LEVEL = 6


def _ours(response: Response) -> bool:
    """Text the server wrote in memory, or the app's own stylesheet; never a
    file sent from disk (someone's upload) or a stream."""
    if isinstance(response.response, FileBody):
        return request.endpoint == "static"
    return isinstance(response.response, DataBody)


def _compressible(response: Response) -> bool:
    if request.method != "GET" or "Range" in request.headers or response.status_code != 200:
        return False
    if "Content-Encoding" in response.headers or "Content-Range" in response.headers:
        return False
    if "no-store" in response.headers.get("Cache-Control", ""):
        return False
    return response.mimetype in COMPRESSIBLE and _ours(response)


async def compress_response(response: Response) -> Response:
    """Called by the app's one after-request hook (server/__init__.py)."""
    if request.method != "GET" or response.mimetype not in COMPRESSIBLE or not _compressible(response):
        return response
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"] <= 0:
        return response
    data = await response.get_data(as_text=False)
    if len(data) < MIN_BYTES:
        return response
    if len(data) > THREAD_ABOVE:
        body = await asyncio.to_thread(gzip.compress, data, LEVEL, mtime=0)
    else:
        body = gzip.compress(data, LEVEL, mtime=0)
    etag, weak = response.get_etag()
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.pop("Accept-Ranges", None)  # ranges of the gzipped body are not offered
    if etag:
        response.set_etag(etag, weak=True)
    return response
