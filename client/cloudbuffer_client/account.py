"""`cloudbuffer login` and `cloudbuffer logout`."""
from __future__ import annotations

import argparse
import getpass
import socket
import sys

from .api import Api
from .config import Login, current_login, forget_login, read_file, save_login, saved_url
from .errors import REFUSED, USAGE, ClientError
from .keystore import forget_keystore


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise ClientError(USAGE, "no terminal to ask for the username and password; use --token-stdin with an API token")
    try:
        return input(prompt).strip()
    except EOFError:
        raise ClientError(USAGE, "login cancelled") from None


def token_name() -> str:
    return f"cloudbuffer on {socket.gethostname() or 'this computer'}"[:64]


def _create_token(api: Api, username: str, password: str) -> tuple[str, int, int | None]:
    """Log in with a cookie just long enough to make a token, then end that
    session. Returns the token, its id, and the account's id."""
    session = api.json("POST", "/account/login", json={"username": username, "password": password})
    try:
        created = api.json("POST", "/account/tokens", json={"name": token_name(), "password": password})
    finally:
        api.json("POST", "/account/logout")
    user_id = session.get("id") if isinstance(session.get("id"), int) else None
    return created["token"], created["id"], user_id


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url or saved_url()
    if not url:
        raise ClientError(USAGE, "which server? run `cloudbuffer login https://your-server`")
    url = url.rstrip("/")
    if args.token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise ClientError(USAGE, "no token on standard input; pipe one in, e.g. `echo cb_… | cloudbuffer login URL --token-stdin`")
        with Api(url, token) as api:
            profile = api.json("GET", "/account/profile")
        device = profile.get("device") or {}
        token_id = device.get("id") if device.get("kind") == "token" else None
        username = profile.get("username")
        user_id = None
    else:
        username = args.username or _ask("Username: ")
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
        if not username or not password:
            raise ClientError(USAGE, "a username and a password are needed")
        with Api(url) as api:
            try:
                token, token_id, user_id = _create_token(api, username, password)
            except ClientError as error:
                if error.exit_code == REFUSED and "login" in error.message:
                    raise ClientError(REFUSED, "wrong username or password; try again") from None
                raise
    previous = read_file()
    path = save_login(Login(url=url, token=token, token_id=token_id, user_id=user_id))
    if previous.get("token") != token:
        # A new login is a new device: keys kept for the last one are not its own.
        forget_keystore()
    print(f"logged in to {url} as {username}; saved in {path}", file=sys.stderr)
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    login = current_login()
    try:
        _revoke(login)
    except ClientError as error:
        if not error.message.startswith("not logged in"):
            raise
        # Revoked already (on the profile page, or by another logout): only forget it.
    forget_login()
    forget_keystore()
    print(f"logged out of {login.url}; the token is revoked", file=sys.stderr)
    return 0


def _revoke(login: Login) -> None:
    with Api.for_login(login) as api:
        token_id = login.token_id
        if token_id is None:
            device = api.json("GET", "/account/profile").get("device") or {}
            token_id = device.get("id") if device.get("kind") == "token" else None
        if token_id is None:
            raise ClientError(REFUSED, "this login is not an API token; revoke it on the profile page")
        api.json("DELETE", f"/account/tokens/{token_id}")
