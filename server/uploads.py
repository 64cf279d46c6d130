"""Receiving uploads from a request: names from headers or the multipart part."""
from __future__ import annotations

from urllib.parse import unquote

from quart import current_app, request
from werkzeug.http import parse_options_header

from . import buffer
from .errors import APIError
from .multipart import boundary_of, parse_form
from .storage import guess_mime, iter_body, sanitize_filename


def filename_from_headers() -> str:
    raw = request.headers.get("X-File-Name")
    if raw is not None:
        try:
            # Headers arrive as latin-1; a client that sent raw UTF-8 bytes
            # instead of percent-encoding still gets its name back intact.
            name = unquote(raw, errors="strict") if "%" in raw else raw.encode("latin-1").decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise APIError(400, "invalid_filename", "X-File-Name must be percent-encoded UTF-8.") from None
    else:
        _, options = parse_options_header(request.headers.get("Content-Disposition", ""))
        name = options.get("filename", "")
    return name


def require_filename(name: str) -> str:
    clean = sanitize_filename(name)
    if not clean:
        raise APIError(400, "missing_filename",
                       "A file needs a name: send X-File-Name or Content-Disposition: attachment; filename=….")
    return clean


def is_multipart() -> bool:
    return request.mimetype == "multipart/form-data"


async def receive_form(principal, fields_limit: int):
    """Stream this request's multipart body: each file part into an Upload
    limited by the user's allowance (size limit and quota), text fields up
    up to fields_limit bytes in all. The uploads are open; the caller
    stores or closes them."""
    settings = current_app.config["CLOUDBUFFER"]
    limit, too_large = await buffer.upload_allowance(principal.user_id)
    return await parse_form(
        iter_body(request.body, settings["UPLOAD_IDLE_SECONDS"]),
        boundary_of(request.headers.get("Content-Type", "")),
        lambda: current_app.storage.new_upload(limit, too_large),
        fields_limit=fields_limit,
    )


async def receive_single_file(principal, field_name: str = "file"):
    """Stream a multipart body with exactly one file part into an Upload.
    Returns (upload, filename, mime); the upload is open and must be stored
    or closed by the caller."""
    form = await receive_form(principal, fields_limit=4096)
    parts = [part for part in form.files if part.field_name == field_name]
    try:
        if len(parts) != 1 or len(form.files) != 1:
            raise APIError(400, "bad_multipart", f"Send exactly one file in a form field named {field_name!r}.")
        part = parts[0]
        filename = require_filename(part.filename)
    except BaseException:
        for other in form.files:
            await other.upload.__aexit__(None, None, None)
        raise
    return part.upload, filename, guess_mime(filename, part.content_type)
