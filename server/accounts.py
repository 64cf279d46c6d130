"""Account operations: register, log in and out, the password, API tokens,
devices (sessions), share links and the profile.

The one place these rules live. The JSON handlers (blueprints/account.py)
and the form views (blueprints/account_pages.py) both call these functions
with values their request model has already validated (api_schema.py, on
the rules of credentials.py), and show what they return or raise. Nothing
here knows of HTTP: a refusal is a problems.Problem, which errors.py turns
into a status; setting or clearing the session cookie is the caller's.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from .auth import Principal, hash_password, verify_password
from .buffer import publish_revoked
from .credentials import check_password_for_user
from .models import files as files_model
from .models import sessions as sessions_model
from .models import users as users_model
from .problems import Conflict, InvalidCredentials, NotFound, WrongPassword
from .services import services

DEFAULT_TOKEN_NAME = "API token"


async def register(username: str, password: str) -> users_model.User:
    """A new account; Conflict if the username is taken."""
    check_password_for_user(password, username)
    password_hash = await hash_password(password)
    user = await services().db.write(users_model.insert_user, username, password_hash)
    if user is None:
        raise Conflict("username_taken", f"The username {username!r} is taken; choose another.")
    return user


async def authenticate(username: str, password: str) -> users_model.User:
    """The account these credentials open; InvalidCredentials otherwise
    (an unknown name costs the same hash as a wrong password)."""
    user = await services().db.read(users_model.select_user_by_username, username)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        raise InvalidCredentials("invalid_credentials", "That username and password do not match an account.")
    return user


async def log_out(principal: Principal | None) -> None:
    """End this session and close its sockets. Logging out with an API
    token, or with nothing, ends nothing: a token is revoked on its own."""
    if principal is None or principal.device_kind != "session":
        return
    await services().db.write(sessions_model.delete_session, principal.user_id, principal.device_id)
    await publish_revoked(principal.user_id, [principal.device_key])


@dataclass(frozen=True)
class PasswordChanged:
    sessions_ended: int
    tokens_ended: int


async def change_password(principal: Principal, current: str, new: str, keep_tokens: bool) -> PasswordChanged:
    """Every other session ends and its sockets close, and so do the API
    tokens unless `keep_tokens` (a new password usually answers a leak, and
    a token minted by whoever had the old one must not outlive it). The
    current password is required, so a borrowed (or stolen) session cannot
    lock the owner out."""
    check_password_for_user(new, principal.username)
    await require_password(principal, current, "The current password is not right.")
    password_hash = await hash_password(new)
    keep = principal.device_id if principal.device_kind == "session" else None
    ended = await services().db.write(sessions_model.change_password, principal.user_id, password_hash, keep,
                                      keep_tokens)
    await publish_revoked(principal.user_id, ended, by=principal.device_name)
    sessions_ended = sum(key.startswith("s") for key in ended)
    return PasswordChanged(sessions_ended, len(ended) - sessions_ended)


async def require_password(principal: Principal, password: str, wrong: str) -> None:
    """WrongPassword (saying `wrong`) unless `password` is the account's."""
    user = await services().db.read(users_model.select_user_by_id, principal.user_id)
    if user is None or not await verify_password(user.password_hash, password):
        raise WrongPassword("wrong_password", wrong)


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once: only its hash is stored
    record: sessions_model.ApiToken


async def create_token(principal: Principal, name: str | None, password: str) -> NewToken:
    """A token is a credential that outlives the session that made it, so
    the password is asked again: a stolen cookie alone cannot mint one."""
    await require_password(principal, password, "That is not your password; a new API token needs it.")
    token = "cb_" + secrets.token_urlsafe(32)
    record = await services().db.write(sessions_model.insert_api_token, principal.user_id, name or DEFAULT_TOKEN_NAME,
                                       token)
    return NewToken(token, record)


async def revoke_token(principal: Principal, token_id: int) -> None:
    deleted = await services().db.write(sessions_model.delete_api_token, principal.user_id, token_id)
    if not deleted:
        raise NotFound("not_found", "No API token with that id.")
    await publish_revoked(principal.user_id, [f"t{token_id}"])


async def revoke_device(principal: Principal, session_id: int) -> bool:
    """End one of the account's sessions; True if it was the asker's own
    (whose cookie the caller then clears)."""
    deleted = await services().db.write(sessions_model.delete_session, principal.user_id, session_id)
    if not deleted:
        raise NotFound("not_found", "No device with that id.")
    await publish_revoked(principal.user_id, [f"s{session_id}"], by=principal.device_name)
    return principal.device_kind == "session" and principal.device_id == session_id


async def log_out_other_devices(principal: Principal) -> int:
    """Every session but this one ends and its sockets close (an API token
    asking ends them all: it is no session itself). Tokens stay. Returns
    how many ended."""
    keep = principal.device_id if principal.device_kind == "session" else None
    ended = await services().db.write(sessions_model.delete_other_sessions, principal.user_id, keep)
    await publish_revoked(principal.user_id, [f"s{session_id}" for session_id in ended], by=principal.device_name)
    return len(ended)


async def rename_device(principal: Principal, session_id: int, name: str) -> None:
    renamed = await services().db.write(sessions_model.update_session_name, principal.user_id, session_id, name)
    if not renamed:
        raise NotFound("not_found", "No device with that id.")
    # Its posts carry its name: no worker may go on with the old one (principal_cache.py).
    await services().broker.publish_account_change(principal.user_id)


def _write_delete_share(conn, user_id: int, share_id: int) -> tuple[bool, list[str]]:
    deleted = files_model.delete_share(conn, user_id, share_id)
    return deleted, files_model.delete_unreferenced_files(conn, user_id)


async def delete_share(principal: Principal, share_id: int) -> None:
    deleted, removed = await services().db.write(_write_delete_share, principal.user_id, share_id)
    if not deleted:
        raise NotFound("not_found", "No share link with that id.")
    await services().storage.remove(removed)


def _read_profile(conn, user_id: int, now: float) -> tuple:
    return (sessions_model.select_sessions(conn, user_id), sessions_model.select_api_tokens(conn, user_id),
            files_model.select_shares(conn, user_id, now), files_model.select_used_bytes(conn, user_id, now))


async def profile(principal: Principal) -> dict:
    """The account as its profile shows it (the Profile model of the API)."""
    now = time.time()
    sessions, tokens, shares, used = await services().db.read(_read_profile, principal.user_id, now)
    return {
        "username": principal.username,
        "device": {"kind": principal.device_kind, "id": principal.device_id, "name": principal.device_name},
        "devices": [
            {"id": s.id, "name": s.device_name, "created_at": s.created_at, "last_seen_at": s.last_seen_at,
             "current": principal.device_kind == "session" and s.id == principal.device_id}
            for s in sessions
        ],
        "tokens": [
            {"id": t.id, "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at}
            for t in tokens
        ],
        "shares": [
            {"id": s.id, "filename": s.file.filename, "size": s.file.size, "created_at": s.created_at,
             "expires_at": s.expires_at, "max_downloads": s.max_downloads, "downloads_left": s.downloads_left,
             "password": s.protected}
            for s in shares
        ],
        "used_bytes": used,
        "quota_bytes": services().settings.quota_bytes,
    }
