"""File downloads with the headers that make them safe to serve to anyone.

The content is always an attachment in a sandbox with no sniffing, so an
uploaded HTML or SVG file can never run script on our origin.

Ranges are ours rather than Quart's: Quart hands a suffix range
(`bytes=-N`) to werkzeug's ContentRange with a negative start, which
asserts (a 500 on every download route), and answers 416 where RFC 9110
lets a server ignore the header and send the whole file.
"""
from __future__ import annotations

from quart import Response, request, send_file
from werkzeug.datastructures import ContentRange
from werkzeug.http import parse_range_header
from werkzeug.sansio.http import is_resource_modified

from .errors import APIError
from .models.files import StoredFile
from .storage import content_disposition, served_mime
from .services import services

DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The part of a `size`-byte file a Range header asks for, as (start,
    stop), or None for all of it: no header, another unit, a malformed one
    or several ranges (RFC 9110 §14.2 lets a server ignore those; we send
    no multipart/byteranges), or an empty file. A suffix range (`-N`) is the
    last N bytes, the whole file if it is shorter (§14.1.2). A range that
    starts at or beyond the end is a 416."""
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1 or size == 0:
        return None
    start, stop = parsed.ranges[0]
    if start < 0:
        return max(0, size + start), size
    if start >= size:
        raise APIError(416, "range_not_satisfiable",
                       f"That range starts beyond the end of the file ({size} bytes).",
                       headers={"Content-Range": f"bytes */{size}"})
    return start, size if stop is None else min(stop, size)


def _range_applies(response: Response) -> bool:
    """If-Range naming another version of the file means: send all of it."""
    if "If-Range" not in request.headers:
        return True
    return not is_resource_modified(
        http_range=request.headers.get("Range"), http_if_range=request.headers.get("If-Range"),
        etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"),
        ignore_if_range=False)


async def file_response(stored: StoredFile, *, data_type: str | None = None, disposition: str = "attachment",
                        csp: str | None = None, etag: str | None = None) -> Response:
    """The file with DOWNLOAD_HEADERS. Only the share page's PDF frame asks
    for `disposition="inline"` and its own `csp` (server/previews.py)."""
    storage = services().storage
    try:
        if storage.local:
            response = await send_file(storage.path_of(stored.stored_name), mimetype=served_mime(stored.mime),
                                       conditional=False)
        else:
            response = await storage.object_response(stored.stored_name, stored.size, served_mime(stored.mime),
                                                     stored.created_at)
    except FileNotFoundError:
        # The row outlived its file (a sweep in between): same answer as expiry.
        raise APIError(404, "not_found", "That file is gone. It may have expired.") from None
    size = response.content_length
    if etag is not None:
        # A limited link's download is its own version (share_links.download_etag).
        response.headers["ETag"] = etag
        response.headers.pop("Last-Modified", None)
    # Preconditions first (304, 412), then the range (RFC 9110 §13.2.2).
    await response.make_conditional(request)
    if response.status_code == 200 and "Range" in request.headers and _range_applies(response):
        span = byte_range(request.headers["Range"], size)
        if span is not None:
            start, stop = span
            await response.response.make_conditional(start, stop)
            response.status_code = 206
            response.content_length = stop - start
            response.content_range = ContentRange("bytes", start, stop, size)
    response.headers["Content-Disposition"] = content_disposition(stored.filename, disposition)
    response.headers.update(DOWNLOAD_HEADERS)
    if csp is not None:
        response.headers["Content-Security-Policy"] = csp
    response.headers.pop("Expires", None)
    response.headers["Accept-Ranges"] = "bytes"
    if data_type is not None:
        response.headers["X-Data-Type"] = data_type
    # A big download on a slow link may take hours: no response timeout.
    response.timeout = None
    return response


ENCRYPTED_DISPOSITION = 'attachment; filename="cloudbuffer.aes128gcm"'


async def blob_response(data: bytes) -> Response:
    """Bytes held in memory (an encrypted text's body blob) served like a
    file: DOWNLOAD_HEADERS and Range over the bytes."""
    response = Response(data, content_type="application/octet-stream")
    if "Range" in request.headers:
        span = byte_range(request.headers["Range"], len(data))
        if span is not None:
            start, stop = span
            response.set_data(data[start:stop])
            response.status_code = 206
            response.content_range = ContentRange("bytes", start, stop, len(data))
    response.headers.update(DOWNLOAD_HEADERS)
    response.headers["Accept-Ranges"] = "bytes"
    return response


def encrypted_headers(response: Response, kind: str, meta: str, key: str | None) -> Response:
    """docs/e2e.md: an encrypted body is an opaque attachment, its key blob
    (not on share links) and meta blob in headers."""
    response.headers["Content-Type"] = "application/octet-stream"
    response.headers["Content-Disposition"] = ENCRYPTED_DISPOSITION
    response.headers["X-Encrypted"] = "aes128gcm"
    response.headers["X-Encrypted-Meta"] = meta
    if key is not None:
        response.headers["X-Encrypted-Key"] = key
    response.headers["X-Data-Type"] = kind
    return response
