"""Reading small request bodies (login forms, JSON) with a hard size cap.

Quart's global body limit is sized for big uploads, so form and JSON bodies
are read here with their own small limit instead of request.form/get_json.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qsl

from quart import g, request

from .errors import APIError
from .storage import iter_body
from .services import services

SMALL_BODY_BYTES = 64 * 1024


async def read_small_body(limit: int = SMALL_BODY_BYTES) -> bytes:
    if (request.content_length or 0) > limit:
        raise APIError(413, "too_large", f"This request body is limited to {limit} bytes.")
    data = bytearray()
    # The same idle and minimum-rate guards as uploads: a login form trickled
    # a byte at a time must not hold a connection forever.
    async for chunk in iter_body(request.body, services().settings.upload_idle_seconds):
        data += chunk
        if len(data) > limit:
            raise APIError(413, "too_large", f"This request body is limited to {limit} bytes.")
    return bytes(data)


async def read_input(limit: int = SMALL_BODY_BYTES) -> dict[str, str]:
    """A JSON object or an urlencoded form, as a dict of strings. Parsed once
    per request: the rate limiter may read it first (limits by username)."""
    if "parsed_input" not in g:
        try:
            g.parsed_input = await _parse_input(limit)
        except APIError as error:
            g.parsed_input = error
    if isinstance(g.parsed_input, APIError):
        raise g.parsed_input
    return g.parsed_input


async def _parse_input(limit: int) -> dict[str, str]:
    body = await read_small_body(limit)
    mimetype = request.mimetype
    if mimetype == "application/json" or mimetype.endswith("+json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise APIError(400, "invalid_json", "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise APIError(400, "invalid_json", "The request body must be a JSON object.")
        return {key: value for key, value in data.items()}
    if mimetype in ("application/x-www-form-urlencoded", ""):
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise APIError(400, "invalid_form", "The form is not valid UTF-8.") from None
    raise APIError(415, "unsupported_media_type", "Send a JSON object or an HTML form.")
