"""Share links: their JSON, absolute URL and QR code."""
from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from quart import current_app, request

from .models.files import StoredFile

MAX_TOKEN_CHARS = 128


def public_base_url() -> str:
    configured = current_app.config["CLOUDBUFFER"]["PUBLIC_URL"]
    return configured or request.host_url.rstrip("/")


def share_json(token: str, stored: StoredFile) -> dict:
    base = public_base_url()
    return {
        "token": token,
        "url": f"{base}/file/get?token={token}",
        "qr_url": f"{base}/file/qr?token={token}",
        "filename": stored.filename,
        "size": stored.size,
        "expires_at": stored.expires_at,
    }


def qr_svg(data: str) -> bytes:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2,
                        error_correction=qrcode.constants.ERROR_CORRECT_M)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()
