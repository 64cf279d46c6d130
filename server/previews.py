"""What the landing page of a share link may preview, and how, safely.

Images, video and audio are shown by <img>, <video> and <audio> from the
download URL itself: media elements never run a file's script, whatever it
holds (an SVG in <img> is a picture, not a document). Text is read here and
put into the page as escaped text. A PDF is framed from ?preview=1, the one
answer that is inline, and only for application/pdf; with nosniff it can
only ever be a PDF, and its CSP sandbox keeps it from scripting anything.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

TEXT_PREVIEW_BYTES = 64 * 1024
MEDIA_KINDS = ("image", "video", "audio")
TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/x-sh",
              "application/x-python", "application/toml", "application/yaml")
PDF_TYPE = "application/pdf"
# A framed PDF: sandboxed by this header, not by the iframe's sandbox
# attribute (Chromium's PDF viewer refuses a sandboxed frame and shows
# "blocked", but runs under the CSP sandbox); nothing loads, and only our
# own landing page may frame it.
PDF_PREVIEW_CSP = "sandbox; default-src 'none'; object-src 'none'; frame-ancestors 'self'"


def preview_kind(mime: str) -> str | None:
    major = mime.split("/", 1)[0]
    if major in MEDIA_KINDS:
        return major
    if major == "text" or mime in TEXT_TYPES:
        return "text"
    if mime == PDF_TYPE:
        return "pdf"
    return None


def _read_start(path: Path, limit: int) -> tuple[str, bool] | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


async def text_preview(path: Path, limit: int = TEXT_PREVIEW_BYTES) -> tuple[str, bool] | None:
    """(the file's first `limit` bytes as text, whether there is more)."""
    return await asyncio.to_thread(_read_start, path, limit)
