"""The buffer API: /file/buffer for curl and scripts, and its history."""
from __future__ import annotations

import time
from quart import Blueprint, Response, jsonify, request

from .. import buffer
from .. import ratelimits
from ..ratelimits import rate_limit, spends_write_budget
from ..api_schema import accepts, openapi, responds
from .. import api_schema as schema
from ..auth import login_required, require_principal
from .. import e2e
from ..downloads import blob_response, encrypted_headers, file_response
from ..e2e_blobs import max_body_bytes
from ..models import e2e as e2e_model
from ..errors import APIError
from ..forms import read_input, read_small_body
from ..inflight import receives_body
from ..models import files as files_model
from ..models import items as items_model
from ..share_links import link_json, share_json
from ..storage import guess_mime, iter_body
from ..services import services
from ..uploads import (filename_from_headers, is_multipart, receive_encrypted_file, receive_single_file,
                       receive_text_part, refuse_multipart_ciphertext, require_filename, sealed_from_headers)

blueprint = Blueprint("buffer", __name__)

DATA_TYPES = ("text", "file")


ITEM_KINDS = DATA_TYPES  # ?kind= of the history search
SEARCH_MAX_CHARS = 200


def data_type_of_request() -> str:
    value = request.headers.get("X-Data-Type", "").strip().lower()
    if value not in DATA_TYPES:
        raise APIError(400, "invalid_data_type", "Send the header X-Data-Type: text or X-Data-Type: file.")
    return value


@blueprint.post("/file/buffer")
@responds({201: schema.Item})
@openapi(schema.BUFFER_BODY, errors=(400, 403, 408, 413, 507))
@spends_write_budget
@login_required
@receives_body
async def post_buffer():
    principal = await require_principal()
    data_type = data_type_of_request()
    settings = services().settings
    sealed = sealed_from_headers()
    # Refused before the body is read; checked again in the write's transaction.
    await services().db.read(e2e.check_write, principal.user_id, sealed)
    if sealed is not None:
        return await post_encrypted(principal, data_type, sealed)
    if data_type == "text":
        # The original clients post text as a form's one file part; its bytes
        # are the text, never the form around them (tests/test_fuzz.py found
        # form boilerplate stored as someone's clipboard).
        if is_multipart():
            body = await receive_text_part(principal)
        else:
            body = await read_small_body(settings.max_text_bytes)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, "invalid_text", "Text must be UTF-8.") from None
        item = await buffer.store_text(principal, text)
        return jsonify(buffer.item_json(item)), 201

    if is_multipart():
        upload, filename, mime = await receive_single_file(principal)
        async with upload:
            item = await buffer.store_file_item(principal, upload, filename, mime)
        return jsonify(buffer.item_json(item)), 201

    filename = require_filename(filename_from_headers())
    mime = guess_mime(filename, request.headers.get("Content-Type"))
    limit, too_large = await buffer.upload_allowance(principal.user_id)
    async with services().storage.new_upload(limit, too_large) as upload:
        async for chunk in iter_body(request.body, settings.upload_idle_seconds):
            await upload.write(chunk)
        item = await buffer.store_file_item(principal, upload, filename, mime)
    return jsonify(buffer.item_json(item)), 201


async def post_encrypted(principal, data_type: str, sealed):
    """docs/e2e.md: the body blob as the raw body; a text in memory (it lives
    in the database like a plaintext one), a file streamed to disk. Also
    the share target's answer to an encrypted post (blueprints/pwa.py)."""
    refuse_multipart_ciphertext()
    if data_type == "text":
        body = await read_small_body(max_body_bytes(services().settings.max_text_bytes))
        item = await buffer.store_encrypted_text(principal, sealed, body)
        return jsonify(buffer.item_json(item)), 201
    async with await receive_encrypted_file(principal) as upload:
        item = await buffer.store_file_item(principal, upload, buffer.ENCRYPTED_FILENAME, buffer.ENCRYPTED_MIME,
                                            sealed)
    return jsonify(buffer.item_json(item)), 201


async def _item_response(item) -> Response:
    if item.encrypted_key is not None:
        return await _encrypted_item_response(item)
    if item.kind == "text":
        response = Response(item.text, content_type="text/plain; charset=utf-8")
        response.headers["X-Data-Type"] = "text"
        response.headers["Cache-Control"] = "private, no-store"
        return response
    stored = await _stored_file_of(item)
    return await file_response(stored, data_type="file")


async def _encrypted_item_response(item) -> Response:
    """The body blob as an attachment, with its key and meta blobs in headers."""
    if item.kind == "text":
        response = await blob_response(item.ciphertext or b"")
    else:
        response = await file_response(await _stored_file_of(item))
    return encrypted_headers(response, item.kind, item.encrypted_meta, item.encrypted_key)


async def _stored_file_of(item):
    stored = await services().db.read(files_model.select_file, item.user_id, item.file_id, time.time())
    if stored is None:
        raise APIError(404, "not_found", "That file is gone. It may have expired.")
    return stored


@blueprint.get("/file/buffer")
@openapi(schema.BUFFER_CONTENT)
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_buffer():
    principal = await require_principal()
    item = await services().db.read(items_model.select_current_item, principal.user_id, time.time())
    if item is None:
        return Response("", status=204, headers={"Cache-Control": "private, no-store"})
    return await _item_response(item)


@blueprint.get("/file/buffer/items")
@openapi(schema.ITEMS_QUERY, errors=(400,))
@responds({200: schema.Items})
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_items():
    principal = await require_principal()
    now = time.time()
    query = request.args.get("q", "").strip()
    if len(query) > SEARCH_MAX_CHARS:
        raise APIError(400, "invalid_query", f"'q' is longer than {SEARCH_MAX_CHARS} characters.")
    # An empty ?kind= is a malformed filter, not "no filter" (the schema's enum says so).
    kind = request.args.get("kind")
    if kind is not None and kind not in ITEM_KINDS:
        raise APIError(400, "invalid_kind", "'kind' must be text or file.")
    items, shares = await services().db.read(
        _read_history, principal.user_id, now, services().settings.history_size, query, kind)
    links: dict[int, list] = {}
    for share in shares:
        links.setdefault(share.file_id, []).append(share)
    return jsonify(items=[_listed(item, links) for item in items])


def _read_history(conn, user_id: int, now: float, limit: int, query: str, kind: str | None) -> tuple[list, list]:
    if query and e2e_model.select_epoch(conn, user_id) is not None:
        # The server holds only ciphertext: search runs on the device (docs/e2e.md).
        raise APIError(409, "encrypted_account", "This account is end-to-end encrypted, so the server cannot "
                                                 "search it: search on your device (the app, or "
                                                 "`cloudbuffer history` with `cloudbuffer paste`).")
    return (items_model.select_items(conn, user_id, now, limit, query=query, kind=kind),
            files_model.select_shares(conn, user_id, now))


def _listed(item, links: dict[int, list]) -> dict:
    data = buffer.item_json(item)
    if item.kind == "file":
        shares = sorted(links.get(item.file_id, []), key=lambda share: -share.expires_at)
        data["links"] = [link_json(share) for share in shares]
    return data


async def _own_item(item_id: int):
    principal = await require_principal()
    item = await services().db.read(items_model.select_item, principal.user_id, item_id, time.time())
    if item is None:
        raise APIError(404, "not_found", "No item with that id is in your buffer history.")
    return item


@blueprint.get("/file/buffer/items/<int:item_id>")
@openapi(schema.ITEM_CONTENT)
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_item(item_id: int):
    return await _item_response(await _own_item(item_id))


@blueprint.delete("/file/buffer/items/<int:item_id>")
@responds({200: schema.Ok})
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def delete_item(item_id: int):
    principal = await require_principal()
    await buffer.delete_item(principal, item_id)
    return jsonify(ok=True)


@blueprint.post("/file/buffer/items/<int:item_id>/share")
@responds({200: schema.Share, 201: schema.Share})
@openapi(errors=(409,))
@spends_write_budget
@login_required
@accepts(schema.ShareRequest)
async def post_item_share(item_id: int, data: schema.ShareRequest):
    """The file's live link (200) or, if it has none or `new` is asked, a new one (201)."""
    principal = await require_principal()
    # The values as sent: share_lifetime is stricter about digits than the
    # model's integer (" 60" and "٦٠" are no lifetime), and `new` is a flag.
    data = await read_input()
    lifetime = buffer.share_lifetime(data.get("expires_in"))
    new = data.get("new") in (True, "true", "1", "on")
    max_downloads = buffer.share_max_downloads(data.get("max_downloads"), data.get("burn"))
    password_hash = await buffer.share_password_hash(data.get("password"))
    token, share, reused = await buffer.share_item(principal, item_id, lifetime, new=new, max_downloads=max_downloads,
                                                   password_hash=password_hash)
    return jsonify(share_json(token, share, reused=reused)), 200 if reused else 201
