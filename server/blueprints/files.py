"""Share links: upload a file, get an expiring link and its QR code."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from quart import Blueprint, Response, jsonify, render_template, request

from .. import buffer
from .. import ratelimits
from ..ratelimits import rate_limit, spends_write_budget
from ..api_schema import openapi, responds
from .. import api_schema as schema
from ..auth import login_required, public, require_principal
from .. import e2e
from ..downloads import encrypted_headers, file_response
from ..errors import APIError
from ..inflight import receives_body
from ..pages import or_page
from ..models import files as files_model
from ..share_links import MAX_TOKEN_CHARS, public_base_url, qr_svg, share_json
from ..previews import PDF_PREVIEW_CSP, TEXT_PREVIEW_BYTES, preview_kind
from ..storage import served_mime
from ..uploads import receive_encrypted_file, receive_single_file, sealed_from_headers
from ..services import services

blueprint = Blueprint("files", __name__)

async def _share_from_request(token: str | None):
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise APIError(404, "not_found", "This link is not valid. It may have expired or been mistyped.")
    share = await services().db.read(files_model.select_share_by_token, token, time.time())
    if share is None:
        raise APIError(404, "not_found", "This link is not valid. It may have expired or been mistyped.")
    return share


@blueprint.get("/file/load")
@rate_limit(limits=ratelimits.PAGE)
@login_required
async def get_load():
    settings = services().settings
    return await render_template("file/load.html", max_bytes=settings.max_upload_bytes,
                                 expire_seconds=settings.expire_seconds)


async def _store_share() -> dict:
    """The posted file, stored as a share link: the link's JSON."""
    principal = await require_principal()
    # Both checked before a byte of the file is read.
    lifetime = buffer.share_lifetime(request.args.get("expires_in"))
    # A share link's key is in its URL fragment, so no key blob (docs/e2e.md).
    sealed = sealed_from_headers(needs_key=False)
    await services().db.read(e2e.check_write, principal.user_id, sealed)
    await buffer.check_share_room(principal.user_id)
    if sealed is not None:
        upload, filename, mime = await receive_encrypted_file(principal), buffer.ENCRYPTED_FILENAME, buffer.ENCRYPTED_MIME
    else:
        upload, filename, mime = await receive_single_file(principal)
    async with upload:
        token, stored = await buffer.store_shared_file(principal, upload, filename, mime, lifetime, sealed)
    return share_json(token, stored)


async def _link_page():
    """A browser's upload form: the page with the link and its QR code."""
    share = await _store_share()
    svg = (await asyncio.to_thread(qr_svg, share["url"])).decode()
    return await render_template("file/link.html", share=share, qr_svg=svg), 201


@blueprint.post("/file/load")
@responds({201: schema.Share})
@openapi(schema.UPLOAD_FORM, errors=(400, 403, 408, 409, 413, 507))
@spends_write_budget
@login_required
@receives_body
@or_page(_link_page)
async def post_load():
    return jsonify(await _store_share()), 201


@blueprint.get("/file/get")
@openapi({**schema.TOKEN_QUERY, **schema.SHARED_FILE}, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_file():
    token = request.args.get("token")
    share = await _share_from_request(token)
    return await _shared_answer(share, f"/file/get?token={quote(token or '', safe='')}&")


@blueprint.get("/file/get/<token>")
@openapi(schema.SHARED_FILE)
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_file_by_path(token: str):
    share = await _share_from_request(token)
    return await _shared_answer(share, f"/file/get/{quote(token, safe='')}?")


def _wants_landing_page() -> bool:
    """A browser navigating (it ranks text/html above */*) gets the page;
    curl, wget, <img>, <video> and anything else get the bytes."""
    if "download" in request.args or "preview" in request.args:
        return False
    return request.accept_mimetypes.best_match(["application/octet-stream", "text/html"]) == "text/html"


async def _shared_answer(share, base: str) -> Response:
    """The landing page, the file, or (?preview=1, PDFs only) the file inline
    for the page's frame. Reading changes nothing: link-preview bots fetch links."""
    stored = share.file
    if stored.encrypted_meta is not None:
        response = await _encrypted_answer(share, base)
    elif _wants_landing_page():
        response = await _landing_page(share, base)
    elif "preview" in request.args and preview_kind(served_mime(stored.mime)) == "pdf":
        response = await file_response(stored, disposition="inline", csp=PDF_PREVIEW_CSP)
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        response = await file_response(stored)
    response.vary.add("Accept")
    return response


async def _encrypted_answer(share, base: str) -> Response:
    """An encrypted link: the page that decrypts in the browser with the key
    of the URL fragment (which never reaches us), or the body blob with its
    meta blob in a header."""
    if _wants_landing_page():
        page = await render_template("file/shared_encrypted.html", share=share, file=share.file,
                                     download_url=base + "download=1")
        return Response(page, content_type="text/html; charset=utf-8", headers={
            "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow"})
    return encrypted_headers(await file_response(share.file), "file", share.file.encrypted_meta, None)


async def _landing_page(share, base: str) -> Response:
    stored = share.file
    mime = served_mime(stored.mime)
    kind = preview_kind(mime)
    text = None
    if kind == "text":
        text = await services().storage.text_preview(stored.stored_name, TEXT_PREVIEW_BYTES)
        if text is None:
            raise APIError(404, "not_found", "That file is gone. It may have expired.")
    page = await render_template("file/shared.html", share=share, file=stored, mime=mime, kind=kind, text=text,
                                 download_url=base + "download=1", preview_url=base + "preview=1")
    return Response(page, content_type="text/html; charset=utf-8", headers={
        "Cache-Control": "private, no-store",
        # The page's URL holds the token: it must not reach other sites or an index.
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
    })


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
