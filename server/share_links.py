"""Share links: their tokens, JSON, absolute URL and QR code.

A link's token is HMAC(secret key, the row's random nonce). The database
keeps the nonce and a hash of the token, never the token: a copy of the
database alone opens no link, while the server can hand the same link out
again when its owner shares the same file twice.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets

import qrcode
import qrcode.image.svg
from quart import current_app, request

from .models.files import Share
from .models.sessions import hash_secret
from .services import services

MAX_TOKEN_CHARS = 128
NONCE_BYTES = 16


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def derive_token(nonce: bytes, secret_key: str | None = None) -> str:
    """32 URL-safe characters (192 bits), like secrets.token_urlsafe(24).
    `secret_key`: the app's, given by code running off the event loop (a
    db.write function), where current_app is not set."""
    key = current_app.secret_key if secret_key is None else secret_key
    digest = hmac.new(key.encode(), b"cloudbuffer share link\0" + nonce, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def public_base_url() -> str:
    configured = services().settings.public_url
    return configured or request.host_url.rstrip("/")


def reusable_token(share: Share, secret_key: str | None = None) -> str | None:
    """The link's token derived again, or None if it cannot be: a row from
    before migration 2, or a secret key changed since it was made (the old
    link still opens; this server just cannot hand it out again)."""
    if share.nonce is None:
        return None
    token = derive_token(share.nonce, secret_key)
    return token if hmac.compare_digest(hash_secret(token), share.token_hash) else None


def limits_json(share: Share) -> dict:
    return {"max_downloads": share.max_downloads, "downloads_left": share.downloads_left,
            "password": share.protected}


# --- downloads of limited links (docs/api.md, "What counts as a download") ---

def download_etag(share: Share, number: int, secret_key: str | None = None) -> str:
    """The ETag of a limited link's `number`-th download: a browser or
    client resuming it sends it back in If-Range, which makes its Range
    request a continuation of that download rather than a new one. Signed,
    so no one can make up a continuation of a download that never happened."""
    key = current_app.secret_key if secret_key is None else secret_key
    mac = hmac.new(key.encode(), b"cloudbuffer download\0%d\0%d\0" % (share.id, number) + (share.token_hash or b""),
                   hashlib.sha256).digest()
    return f'"d{number}.{base64.urlsafe_b64encode(mac[:18]).decode()}"'


def continued_download(share: Share, range_header: str | None, if_range: str | None) -> int | None:
    """The number of the download this request continues, if it is a
    continuation: a Range request whose If-Range is the ETag of a download
    of this link that was taken."""
    if not range_header or not if_range or not if_range.startswith('"d'):
        return None
    number_text = if_range[2:].partition(".")[0]
    if not number_text.isdigit() or not 1 <= int(number_text) <= share.downloads:
        return None
    number = int(number_text)
    return number if hmac.compare_digest(if_range.encode(), download_etag(share, number).encode()) else None


# --- links with a password ---

UNLOCK_SECONDS = 3600  # how long the right password opens a link's page and bytes


def unlock_key(share: Share, expires: int) -> str:
    """What the right password buys: `?unlock=` for an hour, signed over the
    link and its password's hash (a changed link does not open)."""
    mac = hmac.new(current_app.secret_key.encode(),
                   b"cloudbuffer unlock\0%d\0%d\0" % (share.id, expires) + (share.password_hash or "").encode(),
                   hashlib.sha256).digest()
    return f"{expires}.{base64.urlsafe_b64encode(mac[:18]).decode()}"


def is_unlocked(share: Share, key: str | None, now: float) -> bool:
    expires_text = (key or "").partition(".")[0]
    if not expires_text.isdigit() or int(expires_text) < now:
        return False
    return hmac.compare_digest(key.encode(), unlock_key(share, int(expires_text)).encode())


def share_json(token: str, share: Share, *, reused: bool = False) -> dict:
    base = public_base_url()
    return {
        "id": share.id,
        "token": token,
        "url": f"{base}/file/get?token={token}",
        "qr_url": f"{base}/file/qr?token={token}",
        "filename": share.file.filename,
        "size": share.file.size,
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "reused": reused,
        **limits_json(share),
    }


def link_json(share: Share) -> dict:
    """A live link as listed beside its file (no token if it cannot be derived)."""
    data = {"id": share.id, "created_at": share.created_at, "expires_at": share.expires_at, **limits_json(share)}
    token = reusable_token(share)
    if token is not None:
        data["url"] = f"{public_base_url()}/file/get?token={token}"
        data["token"] = token
    return data


def qr_svg(data: str) -> bytes:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2,
                        error_correction=qrcode.constants.ERROR_CORRECT_M)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


# --- the lifetimes the pages offer -----------------------------------------------

SHARE_LIFETIMES = (600, 3600, 7200, 86400, 7 * 86400, 30 * 86400)


def default_share_seconds(settings: dict) -> int:
    return min(settings.expire_seconds, settings.share_max_seconds)


def share_lifetimes(settings: dict) -> list[int]:
    """The choices the app offers for a new link: the usual ones up to the
    operator's maximum, with the default and the maximum themselves."""
    longest = settings.share_max_seconds
    choices = {seconds for seconds in SHARE_LIFETIMES if seconds <= longest}
    choices |= {default_share_seconds(settings), longest}
    return sorted(seconds for seconds in choices if seconds >= 60)
