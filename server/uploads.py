"""Receiving uploads from a request: names from headers or the multipart part."""
from __future__ import annotations

from urllib.parse import unquote

from quart import request
from werkzeug.http import parse_options_header

from . import buffer, e2e
from .e2e_blobs import StreamCheck
from .errors import APIError
from .multipart import FilePart, MemoryPart, boundary_of, parse_form
from .storage import guess_mime, iter_body, sanitize_filename
from .services import services


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
    # The media type as request.mimetype reads it, without parsing the
    # parameters (every text post asks: docs/benchmarks.md, #7).
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower() == "multipart/form-data"


async def receive_form(principal, fields_limit: int, open_part=None):
    """Stream this request's multipart body: each file part into what
    open_part() gives (by default an Upload limited by the user's allowance:
    size limit and quota), the text fields up to fields_limit bytes in all.
    The parts are open; the caller stores or closes them."""
    settings = services().settings
    if open_part is None:
        limit, too_large = await buffer.upload_allowance(principal.user_id)
        open_part = lambda: services().storage.new_upload(limit, too_large)  # noqa: E731
    return await parse_form(
        iter_body(request.body, settings.upload_idle_seconds),
        boundary_of(request.headers.get("Content-Type", "")),
        open_part,
        fields_limit=fields_limit,
    )


async def _receive_one_part(principal, open_part=None, field_name: str = "file",
                            fields: dict | None = None) -> FilePart:
    """The one file part of a multipart body, in a form field `field_name`;
    the form's text fields go into `fields` if given."""
    form = await receive_form(principal, fields_limit=4096, open_part=open_part)
    if fields is not None:
        fields.update({name: values[-1] for name, values in form.fields.items()})
    parts = [part for part in form.files if part.field_name == field_name]
    if len(parts) != 1 or len(form.files) != 1:
        for other in form.files:
            await other.upload.__aexit__(None, None, None)
        raise APIError(400, "bad_multipart", f"Send exactly one file in a form field named {field_name!r}.")
    return parts[0]


async def receive_single_file(principal, fields: dict | None = None):
    """Stream a multipart body with exactly one file part into an Upload.
    Returns (upload, filename, mime); the upload is open and must be stored
    or closed by the caller. The form's text fields go into `fields` if given."""
    part = await _receive_one_part(principal, fields=fields)
    try:
        filename = require_filename(part.filename)
    except BaseException:
        await part.upload.__aexit__(None, None, None)
        raise
    return part.upload, filename, guess_mime(filename, part.content_type)


async def receive_text_part(principal) -> bytes:
    """The original clients' way to post text: a multipart body whose one
    file part, named `file`, holds it. Kept in memory up to MAX_TEXT_BYTES,
    like a raw text body."""
    limit = services().settings.max_text_bytes
    part = await _receive_one_part(principal, open_part=lambda: MemoryPart(limit, buffer.text_too_large))
    return bytes(part.upload.data)


def sealed_from_headers(*, needs_key: bool = True) -> "e2e.Sealed | None":
    """An encrypted write's X-Encrypted, X-Encrypted-Key and X-Encrypted-Meta
    (docs/e2e.md); None for a plaintext one."""
    headers = request.headers
    return e2e.sealed_from(headers.get("X-Encrypted"), headers.get("X-Encrypted-Key"),
                           headers.get("X-Encrypted-Meta"), needs_key=needs_key)


def refuse_multipart_ciphertext() -> None:
    if is_multipart():
        raise APIError(400, "invalid_ciphertext", "An encrypted body is the raw aes128gcm blob "
                                                  "(application/octet-stream), not a form.")


async def receive_encrypted_file(principal):
    """The raw body blob of an encrypted file, streamed into an Upload as it
    comes, its aes128gcm header checked on the way and its last record at
    the end. The upload is open; the caller stores or closes it."""
    refuse_multipart_ciphertext()
    limit, too_large = await buffer.upload_allowance(principal.user_id, encrypted=True)
    upload = services().storage.new_upload(limit, too_large)
    await upload.__aenter__()
    try:
        check = StreamCheck()
        async for chunk in iter_body(request.body, services().settings.upload_idle_seconds):
            check.feed(chunk)
            await upload.write(chunk)
        check.finish()
    except BaseException as error:
        await upload.__aexit__(type(error), error, error.__traceback__)
        raise
    return upload
