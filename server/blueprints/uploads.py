"""Resumable uploads over tus 1.0.0 at /file/uploads (docs/api.md).

Core, creation, creation-with-upload, termination, expiration and checksum
(sha256). This module is the protocol's headers and status codes; what an
upload is and how it finishes is server/resumable.py.
"""
from __future__ import annotations

import base64
import binascii
import re
from email.utils import formatdate

from quart import Blueprint, Response, jsonify, request

from .. import api_schema as schema
from .. import buffer, e2e, ratelimits, resumable
from ..api_schema import openapi, responds
from ..auth import login_required, public, require_principal
from ..errors import APIError
from ..inflight import receives_body
from ..ratelimits import rate_limit, spends_write_budget
from ..services import services
from ..share_links import public_base_url
from ..storage import guess_mime, iter_body, sanitize_filename

blueprint = Blueprint("uploads", __name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
OFFSET_STREAM = "application/offset+octet-stream"
_DIGITS = re.compile(r"[0-9]{1,19}")
_METADATA_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


@blueprint.after_request
async def tus_resumable(response: Response) -> Response:
    # Every answer of the protocol says which version it speaks, refusals too.
    response.headers["Tus-Resumable"] = TUS_VERSION
    return response


def _require_tus() -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise APIError(412, "unsupported_version", f"Send Tus-Resumable: {TUS_VERSION}, the tus version served here.",
                       {"Tus-Version": TUS_VERSION})


def _whole_number(name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not _DIGITS.fullmatch(raw.strip()):
        raise APIError(400, f"invalid_{name.lower().replace('-', '_')}", f"{name} must be a whole number of bytes.")
    return int(raw.strip())


def _expires(upload) -> str:
    return formatdate(upload.expires_at, usegmt=True)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a value
    may be left out), keys unique, values UTF-8."""
    if not header:
        return {}
    if len(header) > resumable.METADATA_MAX_CHARS:
        raise APIError(400, "invalid_metadata", f"Upload-Metadata is limited to {resumable.METADATA_MAX_CHARS} "
                                                "characters.")
    pairs: dict[str, str] = {}
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not _METADATA_KEY.fullmatch(key) or key in pairs or " " in encoded.strip():
            raise APIError(400, "invalid_metadata", "Upload-Metadata is `key base64value` pairs, comma-separated, "
                                                    "each key once.")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise APIError(400, "invalid_metadata", f"The value of {key!r} in Upload-Metadata is not base64 "
                                                    "of UTF-8 text.") from None
    return pairs


async def _new_upload(length: int, header: str | None) -> resumable.NewUpload:
    metadata = parse_metadata(header)
    target = metadata.get("target") or "buffer"
    if target not in resumable.TARGETS:
        raise APIError(400, "invalid_target", "The metadata `target` is `buffer` (the default) or `share`.")
    sealed = _sealed_from_metadata(metadata, target)
    if sealed is not None:
        filename, filetype = buffer.ENCRYPTED_FILENAME, buffer.ENCRYPTED_MIME  # its real ones are in its meta blob
    else:
        filename, filetype = sanitize_filename(metadata.get("filename", "")), metadata.get("filetype")
    if not filename:
        raise APIError(400, "missing_filename", "A file needs a name: send it as `filename` in Upload-Metadata.")
    share_seconds = max_downloads = password_hash = None
    if target == "share":
        share_seconds = buffer.share_lifetime(metadata.get("expires_in"))
        max_downloads = buffer.share_max_downloads(metadata.get("max_downloads"), metadata.get("burn"))
        password_hash = await buffer.share_password_hash(metadata.get("password"))
    # The password is not echoed to HEAD with the rest of the metadata.
    echoed = ",".join(pair for pair in (header or "").split(",") if pair.strip().partition(" ")[0] != "password")
    return resumable.NewUpload(length, filename, guess_mime(filename, filetype), target,
                               share_seconds, echoed, max_downloads, password_hash,
                               sealed.key if sealed else None, sealed.meta if sealed else None)


def _sealed_from_metadata(metadata: dict[str, str], target: str):
    """An end-to-end encrypted upload (docs/e2e.md) says so in its metadata as
    other writes do in headers: `encrypted` (aes128gcm), `key` (the item's
    key blob; none for a share link, whose key is in its URL fragment) and
    `meta`. Whether the account takes it is decided at creation and again
    at the finish, in their transactions (a plaintext upload to an encrypted
    account is 409 `encrypted_account`)."""
    return e2e.sealed_from(metadata.get("encrypted"), metadata.get("key"), metadata.get("meta"),
                           needs_key=target == "buffer")


def _state_headers(upload, offset: int, result: dict | None) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Upload-Expires": _expires(upload), "Cache-Control": "no-store"}
    if result and "item" in result:
        headers["X-Item-Id"] = str(result["item"]["id"])
    if result and "share" in result:
        headers["X-Share-Url"] = result["share"]["url"]
    return headers


def _upload_url(public_id: str) -> str:
    return f"{public_base_url()}/file/uploads/{public_id}"


def _body_chunks():
    return iter_body(request.body, services().settings.upload_idle_seconds)


def _has_body() -> bool:
    # creation-with-upload says so by its Content-Type, even for no bytes
    return (request.mimetype == OFFSET_STREAM or bool(request.content_length)
            or "chunked" in request.headers.get("Transfer-Encoding", "").lower())


def _require_offset_stream() -> None:
    if request.mimetype != OFFSET_STREAM:
        raise APIError(415, "unsupported_media_type", f"A PATCH body is Content-Type: {OFFSET_STREAM}.")


def _public_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise resumable.not_found()
    return upload_id


@blueprint.route("/file/uploads", methods=["OPTIONS"])
@openapi(schema.TUS_OPTIONS)
@rate_limit(limits=ratelimits.PAGE)
@public
async def options_uploads():
    """What this server speaks (tus discovery); the same for everyone."""
    settings = services().settings
    return Response(status=204, headers={
        "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(settings.max_upload_bytes), "Tus-Checksum-Algorithm": "sha256",
        "Allow": "OPTIONS, POST"})


@blueprint.route("/file/uploads", methods=["POST"], provide_automatic_options=False)
@responds({201: schema.UploadState})
@openapi(schema.TUS_CREATE, errors=(400, 409, 412, 413, 460, 507))
@spends_write_budget
@login_required
@receives_body
async def post_upload():
    _require_tus()
    principal = await require_principal()
    if "Upload-Defer-Length" in request.headers:
        raise APIError(400, "invalid_upload_length", "Send Upload-Length: deferred lengths are not supported.")
    new = await _new_upload(_whole_number("Upload-Length"), request.headers.get("Upload-Metadata"))
    with_body = _has_body()
    if with_body:
        _require_offset_stream()
        checksum = resumable.parse_checksum(request.headers.get("Upload-Checksum"))
    upload = await resumable.create(principal, new)
    offset, result = 0, None
    if with_body or new.length == 0:
        try:
            appended = await resumable.append(principal, upload.public_id, 0,
                                              _body_chunks() if with_body else _no_body(), checksum if with_body else None)
        except BaseException:
            # The client never learns this upload's address: it is no upload.
            await resumable.terminate(principal, upload.public_id)
            raise
        offset, result = appended.offset, appended.result
    headers = {"Location": _upload_url(upload.public_id), **_state_headers(upload, offset, result)}
    return jsonify(_state_json(upload, offset, result)), 201, headers


async def _no_body():
    return
    yield


def _state_json(upload, offset: int, result: dict | None) -> dict:
    data = {"id": upload.public_id, "url": _upload_url(upload.public_id), "offset": offset, "length": upload.length,
            "filename": upload.filename, "target": upload.target, "expires_at": upload.expires_at,
            "finished": offset == upload.length and (result is not None or upload.finished)}
    if result:
        data.update(result)
    return data


@blueprint.get("/file/uploads/<upload_id>")
@responds({200: schema.UploadState})
@openapi(schema.TUS_HEAD, errors=(412,))
@rate_limit(limits=ratelimits.UPLOAD_CHUNKS)
@login_required
async def get_upload(upload_id: str):
    """HEAD is tus's offset query; GET says the same as JSON, and once the
    upload is finished, what it became."""
    principal = await require_principal()
    upload, result = await resumable.state(principal, _public_id(upload_id))
    if request.method == "HEAD":
        _require_tus()
    offset = upload.length if upload.finished else upload.offset
    headers = {**_state_headers(upload, offset, result), "Upload-Length": str(upload.length)}
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return jsonify(_state_json(upload, offset, result)), 200, headers


@blueprint.patch("/file/uploads/<upload_id>")
@openapi(schema.TUS_PATCH, errors=(400, 409, 412, 413, 415, 460, 507))
@rate_limit(limits=ratelimits.UPLOAD_CHUNKS)
@login_required
@receives_body
async def patch_upload(upload_id: str):
    principal = await require_principal()
    public_id = _public_id(upload_id)
    await resumable.state(principal, public_id)  # someone else's upload is none, whatever the headers
    _require_tus()
    _require_offset_stream()
    offset = _whole_number("Upload-Offset")
    checksum = resumable.parse_checksum(request.headers.get("Upload-Checksum"))
    appended = await resumable.append(principal, public_id, offset, _body_chunks(), checksum)
    return Response(status=204, headers=_state_headers(appended.upload, appended.offset, appended.result))


@blueprint.delete("/file/uploads/<upload_id>")
@openapi(schema.TUS_DELETE, errors=(409, 412))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def delete_upload(upload_id: str):
    principal = await require_principal()
    public_id = _public_id(upload_id)
    await resumable.state(principal, public_id)
    _require_tus()
    await resumable.terminate(principal, public_id)
    return Response(status=204)
