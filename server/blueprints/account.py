"""Accounts: register, log in and out, the profile with devices and tokens."""
from __future__ import annotations

import secrets
import time

from quart import Blueprint, current_app, jsonify, redirect, render_template, request
from quart_auth import logout_user

from .. import ratelimits
from ..ratelimits import rate_limit
from ..api_schema import accepts, openapi, responds
from .. import api_schema as schema
from ..auth import (
    Principal,
    clean_device_name,
    current_principal,
    device_name_from_user_agent,
    hash_password,
    login_required,
    public,
    require_principal,
    start_session,
    verify_password,
)
from ..buffer import publish_revoked
from ..credentials import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERNAME_PATTERN,
    USERNAME_RULE,
    check_password,
    check_username,
    password_error,
)
from ..redirects import safe_next
from ..errors import APIError, wants_json
from ..forms import flag_field, read_input, string_field
from ..models import files as files_model
from ..models import sessions as sessions_model
from ..models import users as users_model
from ..reveal_once import keep_new_token, take_new_token

blueprint = Blueprint("account", __name__)

# The codes API calls get when a field breaks the rules stated in the schema
# (the same codes, and the same sentences, as forms get from the handlers).
REGISTRATION_CODES = {"username": ("invalid_username", USERNAME_RULE), "password": password_error}
PASSWORD_CODES = {"new_password": password_error}
DEVICE_NAME_CODES = {"name": ("invalid_device_name", "A device name cannot be empty.")}


@blueprint.context_processor
def _credential_rules() -> dict:
    """The forms' own hints (HTML patterns are anchored already)."""
    return {"username_html_pattern": USERNAME_PATTERN.strip("^$"), "min_password": MIN_PASSWORD,
            "max_password": MAX_PASSWORD}


async def _form_error(template: str, error: APIError, **context):
    if wants_json():
        raise error
    page = await render_template(template, error=error.message, **context)
    return page, error.status


@blueprint.get("/account/register")
@blueprint.get("/account/registet")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_register():
    return await render_template("account/register.html", next=safe_next(request.args.get("next")))


@blueprint.post("/account/register")
@blueprint.post("/account/registet")
@responds({201: schema.Account})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.REGISTER)
@public
@accepts(schema.Registration, codes=REGISTRATION_CODES)
async def post_register():
    data: dict = {}
    try:
        data = await read_input()
        username = check_username(string_field(data, "username", max_length=64).strip())
        password = check_password(string_field(data, "password", max_length=None), username)
        password_hash = await hash_password(password)
        user = await current_app.db.write(users_model.insert_user, username, password_hash)
        if user is None:
            raise APIError(409, "username_taken", f"The username {username!r} is taken; choose another.")
    except APIError as error:
        return await _form_error("account/register.html", error, username=data.get("username", ""),
                                 next=safe_next(data.get("next")))
    session = await start_session(user, device_name_from_user_agent(request.headers.get("User-Agent", "")))
    if wants_json():
        return jsonify(id=user.id, username=user.username, device={"id": session.id, "name": session.device_name}), 201
    return redirect(safe_next(data.get("next")), 303)


@blueprint.get("/account/login")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_login():
    return await render_template("account/login.html", next=safe_next(request.args.get("next")))


@blueprint.post("/account/login")
@responds({200: schema.Account})
@openapi(errors=(401,))
@rate_limit(limits=ratelimits.LOGIN)
@public
@accepts(schema.Credentials)
async def post_login():
    data: dict = {}
    try:
        data = await read_input()
        username = string_field(data, "username", max_length=64).strip()
        password = string_field(data, "password", max_length=MAX_PASSWORD)
        user = await current_app.db.read(users_model.select_user_by_username, username)
        if not await verify_password(user.password_hash if user else None, password) or user is None:
            raise APIError(401, "invalid_credentials", "That username and password do not match an account.")
    except APIError as error:
        return await _form_error("account/login.html", error, username=data.get("username", ""),
                                 device_name=data.get("device_name", ""), next=safe_next(data.get("next")))
    session = await start_session(user, _device_name(data))
    if wants_json():
        return jsonify(id=user.id, username=user.username, device={"id": session.id, "name": session.device_name})
    return redirect(safe_next(data.get("next")), 303)


def _device_name(data: dict) -> str:
    """The name the person gave this device on the form, else one from its browser."""
    given = data.get("device_name")
    if isinstance(given, str) and given.strip():
        return clean_device_name(given[:64])
    return device_name_from_user_agent(request.headers.get("User-Agent", ""))


@blueprint.post("/account/logout")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@public  # logging out without a session is harmless and answers the same
async def post_logout():
    principal = await current_principal()
    if principal is not None and principal.device_kind == "session":
        await current_app.db.write(sessions_model.delete_session, principal.user_id, principal.device_id)
        await publish_revoked(principal.user_id, [principal.device_key])
    logout_user()
    if wants_json():
        return jsonify(ok=True)
    return redirect("/account/login", 303)


@blueprint.post("/account/password")
@responds({200: schema.PasswordChanged})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.PASSWORD)
@login_required
@accepts(schema.PasswordChange, codes=PASSWORD_CODES)
async def post_password():
    """Change the password; every other session ends and its sockets close,
    and so do the API tokens unless `keep_tokens` says to keep them (a new
    password usually answers a leak, and a token minted by whoever had the
    old one must not outlive it). The current password is required, so a
    borrowed (or stolen) session cannot lock the owner out."""
    principal = await require_principal()
    try:
        data = await read_input()
        current = string_field(data, "current_password", max_length=MAX_PASSWORD)
        new = check_password(string_field(data, "new_password", max_length=None), principal.username)
        keep_tokens = flag_field(data, "keep_tokens")
        await _require_password(principal, current, "The current password is not right.")
    except APIError as error:
        if wants_json():
            raise
        return await _profile_page(principal, error.status, password_error=error.message)
    password_hash = await hash_password(new)
    keep = principal.device_id if principal.device_kind == "session" else None
    ended = await current_app.db.write(sessions_model.change_password, principal.user_id, password_hash, keep,
                                       keep_tokens)
    await publish_revoked(principal.user_id, ended, by=principal.device_name)
    sessions_ended = sum(key.startswith("s") for key in ended)
    tokens_ended = len(ended) - sessions_ended
    if wants_json():
        return jsonify(ok=True, sessions_ended=sessions_ended, tokens_ended=tokens_ended)
    return await _profile_page(principal, 200, password_changed={"sessions": sessions_ended, "tokens": tokens_ended})


async def _require_password(principal: Principal, password: str, wrong: str) -> None:
    """403 `wrong_password` unless `password` is the account's."""
    user = await current_app.db.read(users_model.select_user_by_id, principal.user_id)
    if user is None or not await verify_password(user.password_hash, password):
        raise APIError(403, "wrong_password", wrong)


async def _profile_page(principal: Principal, status: int, **context):
    context.setdefault("new_token", None)
    page = await render_template("account/profile.html", profile=await _profile_data(principal), **context)
    return page, status


def _read_profile(conn, user_id: int, now: float) -> tuple:
    return (sessions_model.select_sessions(conn, user_id), sessions_model.select_api_tokens(conn, user_id),
            files_model.select_shares(conn, user_id, now), files_model.select_used_bytes(conn, user_id, now))


async def _profile_data(principal: Principal) -> dict:
    settings = current_app.config["CLOUDBUFFER"]
    now = time.time()
    sessions, tokens, shares, used = await current_app.db.read(_read_profile, principal.user_id, now)
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
             "expires_at": s.expires_at}
            for s in shares
        ],
        "used_bytes": used,
        "quota_bytes": settings["QUOTA_BYTES"],
    }


@blueprint.get("/account/profile")
@responds({200: schema.Profile})
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_profile():
    principal = await require_principal()
    if wants_json():
        return jsonify(await _profile_data(principal))
    new_token = take_new_token()
    page, status = await _profile_page(principal, 200, new_token=new_token,
                                       notice=PROFILE_NOTICES.get(request.args.get("done", "")))
    # The page with a token in it is kept nowhere, and never compressed
    # (server/compression.py leaves no-store answers alone: BREACH).
    return page, status, {"Cache-Control": "no-store"} if new_token else {}


@blueprint.post("/account/tokens")
@responds({201: schema.TokenCreated})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.PASSWORD)
@login_required
@accepts(schema.NewToken)
async def post_token():
    """A token is a credential that outlives the session that made it, so
    the password is asked again: a stolen cookie alone cannot mint one.
    Limited like password changes, since each try is a password guess."""
    principal = await require_principal()
    try:
        data = await read_input()
        name = clean_device_name(string_field(data, "name", required=False, max_length=64) or "API token")
        password = string_field(data, "password", max_length=MAX_PASSWORD)
        await _require_password(principal, password, "That is not your password; a new API token needs it.")
    except APIError as error:
        if wants_json():
            raise
        return await _profile_page(principal, error.status, token_error=error.message)
    token = "cb_" + secrets.token_urlsafe(32)
    api_token = await current_app.db.write(sessions_model.insert_api_token, principal.user_id, name, token)
    if wants_json():
        return jsonify(id=api_token.id, name=api_token.name, token=token, created_at=api_token.created_at), 201
    # Redirect-after-POST: reloading the page repeats the GET, not this POST.
    keep_new_token(name, token)
    return redirect("/account/profile#new-token-title", 303)


@blueprint.delete("/account/tokens/<int:token_id>")
@blueprint.post("/account/tokens/<int:token_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def delete_token(token_id: int):
    principal = await require_principal()
    deleted = await current_app.db.write(sessions_model.delete_api_token, principal.user_id, token_id)
    if not deleted:
        raise APIError(404, "not_found", "No API token with that id.")
    await publish_revoked(principal.user_id, [f"t{token_id}"])
    return _done("token-revoked")


@blueprint.delete("/account/sessions/<int:session_id>")
@blueprint.post("/account/sessions/<int:session_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def delete_device(session_id: int):
    principal = await require_principal()
    deleted = await current_app.db.write(sessions_model.delete_session, principal.user_id, session_id)
    if not deleted:
        raise APIError(404, "not_found", "No device with that id.")
    await publish_revoked(principal.user_id, [f"s{session_id}"], by=principal.device_name)
    if principal.device_kind == "session" and principal.device_id == session_id:
        logout_user()
    return _done("device-revoked")


@blueprint.post("/account/sessions/log-out-others")
@responds({200: schema.LoggedOutOthers})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def log_out_other_devices():
    """Every session but this one ends and its sockets close (an API token
    asking ends them all: it is no session itself). Tokens stay."""
    principal = await require_principal()
    keep = principal.device_id if principal.device_kind == "session" else None
    ended = await current_app.db.write(sessions_model.delete_other_sessions, principal.user_id, keep)
    await publish_revoked(principal.user_id, [f"s{session_id}" for session_id in ended], by=principal.device_name)
    if wants_json():
        return jsonify(ok=True, sessions_ended=len(ended))
    return redirect("/account/profile", 303)


@blueprint.patch("/account/sessions/<int:session_id>")
@blueprint.post("/account/sessions/<int:session_id>/rename")
@responds({200: schema.Renamed})
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.DeviceName, codes=DEVICE_NAME_CODES)
async def rename_device(session_id: int):
    principal = await require_principal()
    data = await read_input()
    name = clean_device_name(string_field(data, "name", max_length=64))
    renamed = await current_app.db.write(sessions_model.update_session_name, principal.user_id, session_id, name)
    if not renamed:
        raise APIError(404, "not_found", "No device with that id.")
    if wants_json():
        return jsonify(id=session_id, name=name)
    return _done("device-renamed")


def _write_delete_share(conn, user_id: int, share_id: int) -> tuple[bool, list[str]]:
    deleted = files_model.delete_share(conn, user_id, share_id)
    return deleted, files_model.delete_unreferenced_files(conn, user_id)


@blueprint.delete("/account/shares/<int:share_id>")
@blueprint.post("/account/shares/<int:share_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def delete_share(share_id: int):
    principal = await require_principal()
    deleted, removed = await current_app.db.write(_write_delete_share, principal.user_id, share_id)
    if not deleted:
        raise APIError(404, "not_found", "No share link with that id.")
    await current_app.storage.remove(removed)
    return _done("link-deleted")


# What the profile page confirms after a form's redirect (?done=…): fixed
# sentences only, so the address can never put words on the page.
PROFILE_NOTICES = {
    "device-renamed": "Device renamed.",
    "device-revoked": "Device revoked: it is logged out.",
    "token-revoked": "API token revoked: scripts using it are refused from now on.",
    "link-deleted": "Share link deleted: it no longer works.",
}


def _done(notice: str):
    if wants_json():
        return jsonify(ok=True)
    return redirect(f"/account/profile?done={notice}", 303)
