"""The app shell: the page at /, the files that make it installable, and the
share target.

Static files get cache-busted URLs (Datasette-style): `static_url("style.css")`
adds ?v=<content hash>, and such a request is cached for a year; the bare URL
is revalidated every time. The app's ES modules import each other with
relative URLs, so a query string would not reach them; they are served under
/pwa/js/<version>/ instead, one version for the whole module set, and every
import inherits it. The service worker is served with its precache list
(the same versioned URLs) prepended, so any change to the shell changes the
worker's bytes and the browser installs the new one.
"""
from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from markupsafe import Markup, escape
from quart import Blueprint, Response, g, jsonify, redirect, render_template, request
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

from .. import buffer
from .. import ratelimits
from ..ratelimits import rate_exempt, rate_limit, spends_write_budget
from ..auth import current_principal, public
from ..errors import APIError
from ..inflight import receives_body
from ..pages import or_page
from ..storage import guess_mime, sanitize_filename
from ..uploads import receive_form, sealed_from_headers
from .buffer import data_type_of_request, post_encrypted
from .. import e2e
from ..services import services
from ..share_links import default_share_seconds, share_lifetimes

blueprint = Blueprint("pwa", __name__)

ROOT = Path(__file__).resolve().parent.parent.parent
PWA_DIR = ROOT / "pwa"
JS_DIR = PWA_DIR / "js"
STATIC_DIR = ROOT / "static"
YEAR = 365 * 24 * 3600
SHELL_STATIC = ("style.css",)
SHELL_ICONS = ("icons/icon.svg", "icons/icon-192.png", "icons/icon-512.png", "icons/icon-maskable-512.png")
# The served types of what pwa/ holds; anything else there is not served.
PWA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}
SHARED_FILE_FALLBACK = "shared-file"


# --- cache-busted URLs ----------------------------------------------------

_files: dict[Path, tuple[tuple[int, int], bytes, str]] = {}


def _read(path: Path) -> tuple[bytes, str]:
    """A small file of the app (a few KB) and its sha256, kept in memory and
    re-read only when it changes on disk."""
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _files.get(path)
    if cached is None or cached[0] != key:
        data = path.read_bytes()
        cached = (key, data, hashlib.sha256(data).hexdigest())
        _files[path] = cached
    return cached[1], cached[2]


def content_hash(path: Path) -> str:
    """First 12 hex digits of the file's sha256."""
    return _read(path)[1][:12]


def js_version() -> str:
    """One version for all the app's modules, which import one another."""
    digest = hashlib.sha256()
    for name in _module_names():
        digest.update(name.encode() + b"\0" + content_hash(JS_DIR / name).encode())
    return digest.hexdigest()[:12]


@blueprint.app_template_global()
def static_url(filename: str) -> str:
    return f"/static/{filename}?v={content_hash(STATIC_DIR / filename)}"


@blueprint.app_template_global()
def pwa_url(filename: str) -> str:
    """A file in pwa/: JS modules under their versioned folder, others with ?v=."""
    if filename.startswith("js/"):
        return f"/pwa/js/{js_version()}/{filename[3:]}"
    return f"/pwa/{filename}?v={content_hash(PWA_DIR / filename)}"


def _module_names() -> list[str]:
    """Every module under pwa/js, as a path relative to it ("app.js",
    "e2e/ece.js"): the encryption's modules have a folder of their own."""
    return sorted(path.relative_to(JS_DIR).as_posix() for path in JS_DIR.rglob("*.js"))


_IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?["']((?:\./|\.\./)[\w./-]+\.js)["']""", re.MULTILINE)


def _imports_of(name: str) -> list[str]:
    """The modules `name` imports, as paths relative to pwa/js."""
    text = _read(JS_DIR / name)[0].decode("utf-8")
    base = posixpath.dirname(name)
    return [posixpath.normpath(posixpath.join(base, found)) for found in _IMPORT.findall(text)]


@blueprint.app_template_global()
def module_preloads(entry: str) -> list[str]:
    """Versioned URLs of every module `entry` (in pwa/js) imports, directly or
    not, for <link rel="modulepreload">: the browser fetches them all at once
    instead of discovering them one import level at a time."""
    version = js_version()
    cached = _preloads.get(entry)
    if cached is None or cached[0] != version:
        seen: list[str] = []
        todo = list(_imports_of(entry))
        while todo:
            name = todo.pop(0)
            if name not in seen and not name.startswith("..") and (JS_DIR / name).is_file():
                seen.append(name)
                todo.extend(_imports_of(name))
        cached = (version, [f"/pwa/js/{version}/{name}" for name in seen])
        _preloads[entry] = cached
    return cached[1]


_preloads: dict[str, tuple[str, list[str]]] = {}


@blueprint.app_template_global()
def module_script(entry: str) -> Markup:
    """The <script type="module"> of a page's entry module in pwa/js, with
    modulepreload links for everything it imports."""
    tags = [f'<link rel="modulepreload" href="{escape(url)}">' for url in module_preloads(entry)]
    tags.append(f'<script type="module" src="{escape(pwa_url("js/" + entry))}"></script>')
    return Markup("\n  ".join(tags))


def shell_files() -> list[str]:
    """What the service worker precaches: everything the app page loads."""
    files = [static_url(name) for name in SHELL_STATIC]
    files += [pwa_url(f"js/{name}") for name in _module_names()]
    files += [pwa_url(name) for name in SHELL_ICONS]
    files.append("/manifest.webmanifest")
    return files


@blueprint.app_context_processor
def _viewer() -> dict:
    """The logged-in account of a page that required one (its principal is
    known by then), for the scripts that keep its keys (pwa/js/e2e/). Never
    looked up here: other pages have no viewer."""
    return {"viewer": g.get("principal")}


# --- template filters -------------------------------------------------------

@blueprint.app_template_filter("filesize")
def filesize(size: int | float | None) -> str:
    """1536 → "1.5 KB" (binary multiples, as file managers show them)."""
    if size is None:
        return ""
    size = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            if unit == "bytes":
                return "1 byte" if size == 1 else f"{int(size)} bytes"
            return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"
        size /= 1024
    return ""  # not reached


@blueprint.app_template_filter("isotime")
def isotime(timestamp: float | None) -> str:
    """For <time datetime="…">; the page's JS turns it into local time."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@blueprint.app_template_filter("reltime")
def reltime(timestamp: float | None, now: float | None = None) -> str:
    """"3 min ago", "in 2 h", "just now": readable without JS."""
    if timestamp is None:
        return "never"
    delta = timestamp - (time.time() if now is None else now)
    seconds = abs(delta)
    if seconds < 45:
        return "just now"
    for limit, unit, size in ((3600, "min", 60), (86400, "h", 3600), (math.inf, "d", 86400)):
        if seconds < limit:
            amount = max(1, round(seconds / size))
            break
    return f"in {amount} {unit}" if delta > 0 else f"{amount} {unit} ago"


@blueprint.app_template_filter("duration")
def duration(seconds: int | float) -> str:
    """7200 → "2 hours", 5400 → "90 minutes", 86400 → "1 day"."""
    seconds = int(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}{'s' if amount != 1 else ''}"
    if seconds >= 60:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@blueprint.app_template_filter("percent")
def percent(part: float, whole: float) -> int:
    return 0 if not whole else min(100, round(100 * part / whole))


# --- the app and its files --------------------------------------------------

@blueprint.get("/")
@rate_limit(limits=ratelimits.PAGE)
@public  # anonymous visitors are sent to the login page
async def get_app():
    principal = await current_principal()
    if principal is None:
        return redirect("/account/login", 303)
    settings = services().settings
    response = Response(await render_template(
        "pwa/app.html", principal=principal,
        max_upload_bytes=settings.max_upload_bytes, max_text_bytes=settings.max_text_bytes,
        share_lifetimes=share_lifetimes(settings), default_share_seconds=default_share_seconds(settings),
    ), content_type="text/html; charset=utf-8")
    # The service worker keeps its own copy for offline use; the HTTP cache
    # must not serve one user's page after a logout.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _file_response(path: Path, content_type: str, *, immutable: bool) -> Response:
    """A small file from the repo, with an ETag so revalidation is a 304."""
    if not path.is_file():
        raise NotFound()
    data, digest = _read(path)
    response = Response(data, content_type=content_type)
    response.set_etag(digest[:32])
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable" if immutable else "no-cache"
    return response


async def _conditional(response: Response) -> Response:
    if request.method in ("GET", "HEAD"):
        await response.make_conditional(request)
    return response


@blueprint.get("/manifest.webmanifest")
@rate_exempt  # a static file of the app shell: cheap, cached, the same for everyone
@public
async def get_manifest():
    return await _conditional(_file_response(PWA_DIR / "manifest.webmanifest", PWA_TYPES[".webmanifest"],
                                       immutable=False))


@blueprint.get("/service-worker.js")
@rate_exempt  # a static file of the app shell: cheap, cached, the same for everyone
@public
async def get_service_worker():
    source = _read(PWA_DIR / "service-worker.js")[0].decode("utf-8")
    files = shell_files()
    # The manifest keeps its bare URL (browsers key an installed app on it),
    # so its content goes into the version instead.
    manifest = content_hash(PWA_DIR / "manifest.webmanifest")
    version = hashlib.sha256("\n".join([*files, manifest]).encode()).hexdigest()[:12]
    header = (
        "// Written by the server (server/blueprints/pwa.py): the shell's version\n"
        "// and the versioned URLs to precache; they change whenever a file does.\n"
        f"const SHELL = {json.dumps({'version': version, 'files': files})};\n\n"
    )
    response = Response(header + source, content_type=PWA_TYPES[".js"])
    response.set_etag(version + "-" + hashlib.sha256(source.encode()).hexdigest()[:12])
    # Browsers check the worker for updates themselves; never serve it stale.
    response.headers["Cache-Control"] = "no-cache"
    return await _conditional(response)


@blueprint.get("/pwa/js/<version>/<path:name>")
@rate_exempt  # a static file of the app shell: cheap, cached, the same for everyone
@public
async def get_module(version: str, name: str):
    if not name.endswith(".js"):
        raise NotFound()
    path = safe_join(str(JS_DIR), name)
    if path is None:
        raise NotFound()
    # An old version's URL still gets today's file, but is not cached for long.
    return await _conditional(_file_response(Path(path), PWA_TYPES[".js"], immutable=version == js_version()))


@blueprint.get("/pwa/<path:filename>")
@rate_exempt  # a static file of the app shell: cheap, cached, the same for everyone
@public
async def get_pwa_file(filename: str):
    path = safe_join(str(PWA_DIR), filename)
    suffix = Path(filename).suffix
    if path is None or suffix not in PWA_TYPES or filename.startswith("js/") or filename == "service-worker.js":
        raise NotFound()
    immutable = request.args.get("v") == content_hash(Path(path)) if Path(path).is_file() else False
    return await _conditional(_file_response(Path(path), PWA_TYPES[suffix], immutable=immutable))


@blueprint.get("/favicon.ico")
@rate_exempt  # a static file of the app shell: cheap, cached, the same for everyone
@public
async def get_favicon():
    """Pages link the SVG icon; this answers browsers that ask anyway."""
    return await _conditional(_file_response(PWA_DIR / "icons" / "icon-192.png", "image/png", immutable=False))


def cache_static(response: Response) -> Response:
    """Hashed /static URLs are immutable; bare ones are revalidated. Called
    by the app's one after-request hook (server/__init__.py)."""
    if request.endpoint == "static" and response.status_code in (200, 304):
        filename = (request.view_args or {}).get("filename", "")
        try:
            fresh = request.args.get("v") == content_hash(STATIC_DIR / filename)
        except OSError:
            fresh = False
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable" if fresh else "no-cache"
    return response


# --- the share target -------------------------------------------------------

def shared_text(title: str, text: str, url: str) -> str:
    """What a share becomes as text: the text and the URL (once, if the text
    already holds it); the title only when nothing else came. The same rule
    is in pwa/js/pending-shares.js."""
    title, text, url = title.strip(), text.strip(), url.strip()
    parts = [text] if text else []
    if url and url not in text:
        parts.append(url)
    if not parts and title:
        parts.append(title)
    return "\n".join(parts)


@blueprint.get("/share-target")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_share_target():
    return redirect("/", 303)


async def _shared_page():
    principal = await current_principal()
    if principal is None:
        # Without a worker there is nowhere to keep the share until the person
        # has logged in; the page tells them to share again.
        return redirect("/account/login?next=/&shared=lost", 303)
    if (encrypted := await _post_if_encrypted(principal)) is not None:
        return encrypted
    return redirect(f"/?shared={len(await _store_shared(principal))}", 303)


async def _post_if_encrypted(principal):
    """The app's worker posts a share to an encrypted account encrypted, as
    /file/buffer takes it; a plaintext one (no worker) is refused before
    its form is read: the share sheet's text must not reach the server."""
    sealed = sealed_from_headers()
    await services().db.read(e2e.check_write, principal.user_id, sealed)
    if sealed is not None:
        return await post_encrypted(principal, data_type_of_request(), sealed)
    return None


async def _store_shared(principal) -> list:
    """The shared title, text, URL and files, stored as buffer items."""
    # Title, text and URL become one text item: one item's worth in all.
    form = await receive_form(principal, fields_limit=services().settings.max_text_bytes)
    stored = []
    try:
        field = lambda name: (form.fields.get(name) or [""])[0]  # noqa: E731
        text = shared_text(field("title"), field("text"), field("url"))
        if text:
            stored.append(await buffer.store_text(principal, text))
        for part in form.files:
            # A form with no file chosen still sends an empty, nameless part.
            if part.field_name != "files" or (not part.filename and part.upload.size == 0):
                continue
            filename = sanitize_filename(part.filename) or SHARED_FILE_FALLBACK
            async with part.upload:
                stored.append(await buffer.store_file_item(
                    principal, part.upload, filename, guess_mime(filename, part.content_type)))
    finally:
        for part in form.files:
            await part.upload.__aexit__(None, None, None)  # removes what was not stored
    return stored


@blueprint.post("/share-target")
@spends_write_budget
@public  # a logged-out share is sent to the login page (see docs/pwa.md)
@receives_body
@or_page(_shared_page)
async def post_share_target():
    """The manifest's share_target, for when no service worker took the POST
    (normally the worker keeps the share in IndexedDB and the app uploads it).
    Text and URL become a text item, each file a file item; the last is the
    buffer."""
    principal = await current_principal()
    if principal is None:
        raise APIError(401, "unauthorized", "Log in, then share again.")
    if (encrypted := await _post_if_encrypted(principal)) is not None:
        return encrypted
    return jsonify(items=[buffer.item_json(item) for item in await _store_shared(principal)]), 201
