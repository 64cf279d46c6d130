"""Settings, read once from CLOUDBUFFER_* environment variables.

Every setting is declared once, as a field of the frozen dataclass Settings
(SETTINGS lists them for the README table and the tests), so the README,
the validation and the defaults cannot drift apart (a test checks the README
lists each one).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting has a value we refuse to start with."""


def _whole_number(raw: str, expected: str) -> int:
    # int()'s own complaint ("invalid literal for int() with base 10") says
    # nothing about what the setting wants.
    try:
        return int(raw)
    except ValueError:
        raise ValueError(expected) from None


def _positive_int(raw: str) -> int:
    value = _whole_number(raw, "must be a positive integer")
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = _whole_number(raw, "must be zero or a positive integer")
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL such as https://buffer.example.com")
    return raw.rstrip("/")


def _redis_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _database_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("postgresql", "postgres"):
        raise ValueError("must be a postgresql:// URL (leave it unset for the SQLite file in DATA_DIR)")
    return raw


def _storage_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("must be an s3://bucket/prefix URL (leave it unset for the files dir in DATA_DIR)")
    return raw


def _endpoint(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL such as https://s3.example.com:9000")
    return raw.rstrip("/")


def _patch_names(raw: str) -> tuple[str, ...]:
    from .patches import NAMES  # here: the patches import this module

    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        raise ValueError(f"names no patch called {', '.join(unknown)}; the patches are {', '.join(NAMES)}")
    return names


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        _url(origin)
    return origins


def _secret(raw: str) -> str:
    # A short key makes session cookies forgeable by brute force; the same
    # bar as the generated key file (data_dir.load_or_create_secret_key).
    if len(raw.strip()) < 32:
        raise ValueError("must be at least 32 characters, e.g. the output of "
                         "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
    return raw.strip()


def _nice(raw: str) -> int:
    value = _whole_number(raw, "must be a whole number from 0 to 19")
    if not 0 <= value <= 19:
        raise ValueError("must be a whole number from 0 to 19")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


@dataclass(frozen=True)
class Setting:
    """One CLOUDBUFFER_* variable, as the README table and the parser see it."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str

    @property
    def attribute(self) -> str:
        return self.name.lower()


def _setting(default: Any, parse: Callable[[str], Any], help: str) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: the field's name in upper case after
    CLOUDBUFFER_ is its variable, its metadata the parser and the README's
    sentence. Built once by load_settings and handed to what needs it
    (create_app puts it in the app's Services, server/services.py)."""

    data_dir: Path = _setting("user_files", str, "Directory for the SQLite database, uploaded files and the generated secret key; owner-only (0700 directories, 0600 files), an older looser one is tightened at start-up.")
    secret_key: str | None = _setting(None, _secret, "Key that signs session cookies (at least 32 characters). If unset, one is generated once and kept in DATA_DIR/secret_key (mode 0600).")
    expire_seconds: int = _setting(7200, _positive_int, "Lifetime of buffer items, in seconds, and of a share link whose owner chose none.")
    max_files: int = _setting(10, _positive_int, "Files kept per user in the buffer history; over it the oldest leave the history (a file that has a live share link stays for its link).")
    max_shares: int = _setting(20, _positive_int, "Live share links per user, counted apart from MAX_FILES; past it a new link is refused with 409 until one expires or is deleted. A link ends only at its own expiry or when its owner deletes it.")
    share_max_seconds: int = _setting(7 * 24 * 3600, _positive_int, "Longest lifetime a person may choose for a share link, in seconds.")
    history_size: int = _setting(20, _positive_int, "Buffer items (text and files) kept per user; the newest is the buffer.")
    max_upload_bytes: int = _setting(1024**3, _positive_int, "Largest accepted file or text body, in bytes; enforced while streaming.")
    max_text_bytes: int = _setting(1024**2, _positive_int, "Largest text item, in bytes (texts live in the database; send bigger ones as files).")
    quota_bytes: int = _setting(5 * 1024**3, _positive_int, "Disk space each user may hold in files, in bytes; an upload over it is refused with 413.")
    public_url: str | None = _setting(None, _url, "Base URL of share links (e.g. https://buffer.example.com); else taken from the request. "
                                      "An https URL also turns on Secure cookies and Strict-Transport-Security.")
    redis_url: str | None = _setting(None, _redis_url, "Redis URL for live sync across workers and hosts; unset means in-process only (one worker).")
    database_url: str | None = _setting(None, _database_url, "PostgreSQL URL (postgresql://user:password@host:5432/db) for the data, shared by every host; unset means the SQLite file in DATA_DIR (one host). See docs/operations.md, Scale out.")
    storage_url: str | None = _setting(None, _storage_url, "Object storage for the files, shared by every host: s3://bucket/prefix in any S3-compatible store (credentials from the standard AWS_* variables; a missing bucket is created at start-up when they allow it). Unset means the files dir in DATA_DIR.")
    s3_endpoint: str | None = _setting(None, _endpoint, "Endpoint URL of the S3-compatible store (e.g. http://minio:9000); unset means AWS's own for AWS_REGION.")
    allowed_origins: tuple[str, ...] = _setting((), _origins, "Extra origins (comma-separated) allowed to use cookie sessions and the WebSocket.")
    ws_max_per_user: int = _setting(20, _positive_int, "Live sockets one user may hold open, counted across all workers and hosts (with Redis, through presence); the next is closed with 1013.")
    ws_compression: bool = _setting(False, _bool, "Accept permessage-deflate on live sockets when a client offers it (browsers do). Off by default: each compressed socket keeps zlib state, about 130 KiB more per idle socket (docs/benchmarks.md), for messages that are small JSON.")
    disabled_patches: tuple[str, ...] = _setting((), _patch_names, "Patches of library internals (server/patches/, comma-separated names) to leave off, to measure what one buys or to work around a library upgrade; the server then runs that part as the library ships it. Each patch also turns itself off, with one warning line, if the library no longer looks as it was checked.")
    sweep_seconds: int = _setting(60, _positive_int, "Interval of the sweeper that deletes expired items and orphan files.")
    uploads_in_flight: int = _setting(8, _positive_int, "Request bodies (uploads, text posts, shares) one user may be sending to one worker process at once; the next gets 413 (with Retry-After) until one has finished. Bounds the memory one account can make a worker hold.")
    upload_expire_seconds: int = _setting(24 * 3600, _positive_int, "Lifetime of a resumable (tus) upload, in seconds from its creation: one not finished by then is refused and its bytes are removed by the sweeper.")
    upload_idle_seconds: int = _setting(60, _positive_int, "An upload that sends nothing for this long is dropped and its temp file removed.")
    secure_cookies: bool | None = _setting(None, _bool, "Force the Secure cookie flag on or off; by default it is set when PUBLIC_URL is https.")
    upload_nice: int = _setting(10, _nice, "How many nice levels below the rest of the server the threads run that write upload bytes to disk (0–19, Linux). Their CPU goes to live pushes and requests first when a core is busy; 0 treats them the same.")
    upload_min_rate: int = _setting(1024, _non_negative_int, "Slowest accepted upload, in bytes per second, measured over each UPLOAD_IDLE_SECONDS window; a slower (trickling) upload is dropped and its temp file removed. 0 turns the check off.")
    min_free_bytes: int = _setting(256 * 1024**2, _non_negative_int, "Free disk space kept on the data dir's filesystem, in bytes; below it uploads and new texts get 507 so the database always has room. 0 turns the check off.")
    rate_limits: bool = _setting(True, _bool, "Rate limits on logins, sign-ups, share links, uploads and the rest (see docs/security.md). Turn off only for benchmarks or behind a proxy that limits.")
    trusted_hops: int = _setting(0, _non_negative_int, "Reverse proxies in front of the server that append to X-Forwarded-For; the client address for rate limits is the one that many entries from the right. 0 means the socket's peer address is used and X-Forwarded-For ignored.")


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name.upper(), f.default, f.metadata["parse"], f.metadata["help"]) for f in fields(Settings)
)
_BY_NAME = {s.name: s for s in SETTINGS}


def load_settings(environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Parse and validate every setting; raise ConfigError naming the bad one.
    `overrides` (tests, benchmarks) give values by variable name, already typed."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    unknown = set(overrides) - set(_BY_NAME)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.attribute] = overrides[setting.name]
            continue
        raw = environ.get("CLOUDBUFFER_" + setting.name)
        if raw is None or raw == "":
            values[setting.attribute] = setting.default
            continue
        try:
            values[setting.attribute] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"CLOUDBUFFER_{setting.name}={raw!r} is invalid: {error}") from None
    values["data_dir"] = Path(values["data_dir"]).resolve()
    return Settings(**values)
