"""Share links: upload a file, get an expiring link and its QR code."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from quart import Blueprint, Response, jsonify, redirect, render_template, request

from .. import buffer
from .. import ratelimits
from ..ratelimits import rate_limit, spends_write_budget
from ..api_schema import accepts, openapi, responds
from .. import api_schema as schema
from ..auth import login_required, public, require_principal, verify_password
from .. import e2e
from ..downloads import encrypted_headers, file_response
from ..errors import APIError
from ..inflight import receives_body
from ..pages import or_page
from ..models import files as files_model
from ..share_links import (MAX_TOKEN_CHARS, UNLOCK_SECONDS, continued_download, default_share_seconds,
                           download_etag, is_unlocked, share_lifetimes,
                           public_base_url, qr_svg, share_json, unlock_key)
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
                                 expire_seconds=settings.expire_seconds, share_lifetimes=share_lifetimes(settings),
                                 default_share_seconds=default_share_seconds(settings))


async def _store_share() -> dict:
    """The posted file, stored as a share link: the link's JSON."""
    principal = await require_principal()
    # Checked before a byte of the file is read, when they come in the
    # query; the form's own fields (before or after the file) are read with it.
    options = dict(request.args)
    if "password" in options:
        # A query string reaches access logs and browser histories.
        raise APIError(400, "invalid_password", "Send a link's password as a form field, not in the address.")
    buffer.share_lifetime(options.get("expires_in"))
    buffer.share_max_downloads(options.get("max_downloads"), options.get("burn"))
    # A share link's key is in its URL fragment, so no key blob (docs/e2e.md).
    sealed = sealed_from_headers(needs_key=False)
    await services().db.read(e2e.check_write, principal.user_id, sealed)
    await buffer.check_share_room(principal.user_id)
    fields: dict = {}
    if sealed is not None:
        upload, filename, mime = await receive_encrypted_file(principal), buffer.ENCRYPTED_FILENAME, buffer.ENCRYPTED_MIME
    else:
        upload, filename, mime = await receive_single_file(principal, fields)
    async with upload:
        options.update({name: value for name, value in fields.items() if value != ""})
        lifetime = buffer.share_lifetime(options.get("expires_in"))
        max_downloads = buffer.share_max_downloads(options.get("max_downloads"), options.get("burn"))
        password_hash = await buffer.share_password_hash(options.get("password"))
        token, stored = await buffer.store_shared_file(principal, upload, filename, mime, lifetime, max_downloads,
                                                       password_hash, sealed)
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


@blueprint.post("/file/get")
@openapi({**schema.TOKEN_QUERY, **schema.UNLOCK}, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_PASSWORD)
@public
@accepts(schema.LinkPassword)
async def post_file(data: schema.LinkPassword):
    token = request.args.get("token") or ""
    return await _unlock(token, data.password, f"/file/get?token={quote(token, safe='')}&")


@blueprint.post("/file/get/<token>")
@openapi(schema.UNLOCK, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_PASSWORD)
@public
@accepts(schema.LinkPassword)
async def post_file_by_path(token: str, data: schema.LinkPassword):
    return await _unlock(token, data.password, f"/file/get/{quote(token, safe='')}?")


# Said alike for a wrong password and for a link that does not exist (or
# has no password), and after the same argon2 work: from outside, the two
# cannot be told apart.
WRONG_PASSWORD = "This link is not valid, or that is not its password."


async def _unlock(token: str, password: str, base: str) -> Response:
    """The right password: 303 to the link's page (or, for scripts, its
    bytes) with an unlock key good for an hour."""
    share = None
    if 0 < len(token) <= MAX_TOKEN_CHARS:
        share = await services().db.read(files_model.select_share_by_token, token, time.time())
    expected = share.password_hash if share is not None and share.protected and not share.exhausted else None
    if not await verify_password(expected, password):
        if _wants_landing_page():
            page = await render_template("file/password.html", action=base.rstrip("?&"), error=WRONG_PASSWORD)
            return Response(page, status=404, content_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)
        raise APIError(404, "not_found", WRONG_PASSWORD)
    key = unlock_key(share, int(time.time()) + UNLOCK_SECONDS)
    return redirect(f"{base}unlock={quote(key, safe='')}", 303)


_PAGE_HEADERS = {
    "Cache-Control": "private, no-store",
    # The page's URL holds the token: it must not reach other sites or an index.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


async def _password_page(base: str) -> Response:
    page = await render_template("file/password.html", action=base.rstrip("?&"), error=None)
    return Response(page, content_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


def _wants_landing_page() -> bool:
    """A browser navigating (it ranks text/html above */*) gets the page;
    curl, wget, <img>, <video> and anything else get the bytes."""
    if "download" in request.args or "preview" in request.args:
        return False
    return request.accept_mimetypes.best_match(["application/octet-stream", "text/html"]) == "text/html"


async def _shared_answer(share, base: str) -> Response:
    """The landing page, the file, or (?preview=1, PDFs only) the file inline
    for the page's frame. Reading changes nothing: link-preview bots fetch links
    (a link with a download limit counts the bytes it hands out: _limited_answer)."""
    stored = share.file
    if share.protected:
        key = request.args.get("unlock")
        if not is_unlocked(share, key, time.time()):
            if _wants_landing_page() and not share.exhausted:
                response = await _password_page(base)
                response.vary.add("Accept")
                return response
            raise _missing_link()  # to a script, a link it cannot open is no link
        base += f"unlock={quote(key, safe='')}&"
    if share.max_downloads is not None:
        return await _limited_answer(share, base)
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


# How long continuations of a limited link's last download still work
# (docs/api.md): then the link and, unless the buffer holds it, its file go.
LAST_DOWNLOAD_GRACE_SECONDS = 3600


async def _limited_answer(share, base: str) -> Response:
    """A link with a download limit. Its landing page is free; bytes count
    one download each, in one UPDATE that cannot pass the limit, unless the
    request continues a download already counted (a Range request whose
    If-Range is that download's ETag). Once none is left the link answers
    as a missing one, but to continuations."""
    continued = continued_download(share, request.headers.get("Range"), request.headers.get("If-Range"))
    if continued is None and share.exhausted:
        raise _missing_link()
    encrypted = share.file.encrypted_meta is not None
    if continued is None and _wants_landing_page():
        # An encrypted link's page fetches the bytes to decrypt them: that is its download.
        response = await (_encrypted_answer(share, base) if encrypted else _landing_page(share, base))
    elif continued is None and request.method == "HEAD":
        response = await file_response(share.file)  # what a download would be, without taking one
    else:
        number = continued
        if number is None:
            number = await services().db.write(files_model.take_download, share.id, time.time(),
                                               LAST_DOWNLOAD_GRACE_SECONDS)
            if number is None:
                raise _missing_link()  # the last one went to someone else just now
        response = await file_response(share.file, etag=download_etag(share, number))
        if encrypted:
            response = encrypted_headers(response, "file", share.file.encrypted_meta, None)
    response.vary.add("Accept")
    return response


def _missing_link() -> APIError:
    return APIError(404, "not_found", "This link is not valid. It may have expired or been mistyped.")
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
    # A limited link shows no preview: each would spend one of its downloads.
    kind = preview_kind(mime) if share.max_downloads is None else None
    text = None
    if kind == "text":
        text = await services().storage.text_preview(stored.stored_name, TEXT_PREVIEW_BYTES)
        if text is None:
            raise APIError(404, "not_found", "That file is gone. It may have expired.")
    page = await render_template("file/shared.html", share=share, file=stored, mime=mime, kind=kind, text=text,
                                 download_url=base + "download=1", preview_url=base + "preview=1")
    return Response(page, content_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@blueprint.get("/file/qr")
@openapi({**schema.TOKEN_QUERY, **schema.QR_CODE}, errors=(404,))
@rate_limit(limits=ratelimits.SHARE_LOOKUP)
@public
async def get_qr():
    token = request.args.get("token")
    if (await _share_from_request(token)).exhausted:
        raise _missing_link()
    svg = await asyncio.to_thread(qr_svg, f"{public_base_url()}/file/get?token={token}")
    return Response(svg, content_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})
