"""The saved login: $XDG_CONFIG_HOME/cloudbuffer/client.toml, mode 0600.

CLOUDBUFFER_URL and CLOUDBUFFER_TOKEN override the file, so scripts and CI
need no login step.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from .errors import REFUSED, USAGE, ClientError


@dataclass(frozen=True)
class Login:
    url: str
    token: str
    token_id: int | None = None
    # The account's id, which end-to-end keys are bound to (IKM_e): the
    # login's answer says it, GET /account/e2e may not.
    user_id: int | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cloudbuffer" / "client.toml"


def read_file() -> dict:
    path = config_path()
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ClientError(USAGE, f"cannot read {path} ({error}); fix or delete it and run `cloudbuffer login`") from None


def saved_url() -> str | None:
    return os.environ.get("CLOUDBUFFER_URL") or read_file().get("url")


def current_login() -> Login:
    """The server and token to use, or a REFUSED error saying how to log in."""
    saved = read_file()
    url = os.environ.get("CLOUDBUFFER_URL") or saved.get("url")
    token = os.environ.get("CLOUDBUFFER_TOKEN") or saved.get("token")
    if not url or not token:
        raise ClientError(REFUSED, "not logged in: run `cloudbuffer login URL`, "
                                   "or set CLOUDBUFFER_URL and CLOUDBUFFER_TOKEN")
    same = token == saved.get("token")
    return Login(url=url.rstrip("/"), token=token, token_id=saved.get("token_id") if same else None,
                 user_id=saved.get("user_id") if same else None)


def save_login(login: Login) -> Path:
    """Write the file atomically, created 0600 (it holds a secret) in a 0700 dir."""
    data = {"url": login.url, "token": login.token}
    for name in ("token_id", "user_id"):
        if getattr(login, name) is not None:
            data[name] = getattr(login, name)
    return write_private(config_path(), tomli_w.dumps(data).encode())


def write_private(path: Path, content: bytes) -> Path:
    """Write a file that holds secrets atomically, created 0600 in a 0700 dir."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # an older temp file may have had other bits
        file.write(content)
        file.flush()
        os.fsync(file.fileno())  # the keys file must not be lost half-written
    os.replace(temp, path)
    return path


def forget_login() -> bool:
    try:
        config_path().unlink()
        return True
    except FileNotFoundError:
        return False
