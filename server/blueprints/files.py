"""Share links: upload a file, get an expiring link and its QR code."""
from __future__ import annotations

import asyncio
import time

from quart import Blueprint, Response, current_app, jsonify, render_template, request

from .. import buffer
from .. import ratelimits
from ..ratelimits import rate_limit, spends_write_budget
from ..api_schema import openapi, responds
from .. import api_schema as schema
from ..auth import login_required, public, require_principal
from ..downloads import file_response
from ..errors import APIError, wants_json
from ..inflight import receives_body
from ..models import files as files_model
from ..share_links import MAX_TOKEN_CHARS, public_base_url, qr_svg, share_json
from ..uploads import receive_single_file

blueprint = Blueprint("files", __name__)

async def _share_from_request(token: str | None):
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise APIError(404, "not_found", "This link is not valid. It may have expired or been mistyped.")
    share = await files_model.select_share_by_token(current_app.db.reader, token, time.time())
    if share is None:
        raise APIError(404, "not_found", "This link is not valid. It may have expired or been mistyped.")
    return share


@blueprint.get("/file/load")
@rate_limit(limits=ratelimits.PAGE)
@login_required
async def get_load():
    settings = current_app.config["CLOUDBUFFER"]
    return await render_template("file/load.html", max_bytes=settings["MAX_UPLOAD_BYTES"],
                                 expire_seconds=settings["EXPIRE_SECONDS"])


def _share_lifetime(raw: str | None) -> int | None:
    """`?expires=SECONDS`: a link may live shorter than CLOUDBUFFER_EXPIRE_SECONDS
    (`cloudbuffer share --expires 10m`), never longer than the operator allows."""
    if raw is None:
        return None
    longest = current_app.config["CLOUDBUFFER"]["EXPIRE_SECONDS"]
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= longest:
        raise APIError(400, "invalid_input", f"expires is a number of seconds from 1 to {longest}.")
    return int(raw)


@blueprint.post("/file/load")
@responds({201: schema.Share})
@openapi(schema.UPLOAD_FORM, errors=(400, 403, 408, 413, 507))
@spends_write_budget
@login_required
@receives_body
async def post_load():
    principal = await require_principal()
    lifetime = _share_lifetime(request.args.get("expires"))  # checked before a byte of the body is read
    upload, filename, mime = await receive_single_file(principal)
    async with upload:
        token, stored = await buffer.store_shared_file(principal, upload, filename, mime, lifetime)
    share = share_json(token, stored)
    if wants_json():
        return jsonify(share), 201
    svg = (await asyncio.to_thread(qr_svg, share["url"])).decode()
    return await render_template("file/link.html", share=share, qr_svg=svg), 201


@blueprint.get("/file/get")
@openapi({**schema.TOKEN_QUERY, **schema.SHARED_FILE}, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_file():
    share = await _share_from_request(request.args.get("token"))
    return await file_response(share.file)


@blueprint.get("/file/get/<token>")
@openapi(schema.SHARED_FILE)
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_file_by_path(token: str):
    share = await _share_from_request(token)
    return await file_response(share.file)


@blueprint.get("/file/qr")
@openapi({**schema.TOKEN_QUERY, **schema.QR_CODE}, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_qr():
    token = request.args.get("token")
    await _share_from_request(token)
    svg = await asyncio.to_thread(qr_svg, f"{public_base_url()}/file/get?token={token}")
    return Response(svg, content_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})
