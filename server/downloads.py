"""File downloads with the headers that make them safe to serve to anyone.

The content is always an attachment in a sandbox with no sniffing, so an
uploaded HTML or SVG file can never run script on our origin.
"""
from __future__ import annotations

from quart import Response, current_app, send_file

from .errors import APIError
from .models.files import StoredFile
from .storage import content_disposition

DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


async def file_response(stored: StoredFile, *, data_type: str | None = None, disposition: str = "attachment",
                        csp: str | None = None) -> Response:
    """The file with DOWNLOAD_HEADERS. Only the share page's PDF frame asks
    for `disposition="inline"` and its own `csp` (server/previews.py)."""
    path = current_app.storage.path_of(stored.stored_name)
    try:
        response = await send_file(path, mimetype=stored.mime, conditional=True)
    except FileNotFoundError:
        # The row outlived its file (a sweep in between): same answer as expiry.
        raise APIError(404, "not_found", "That file is gone. It may have expired.") from None
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
