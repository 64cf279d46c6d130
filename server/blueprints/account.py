"""Accounts: register, log in and out, the profile with devices and tokens.

The routes, and their JSON answers (the API); a browser's form or
navigation gets the page view of account_pages.py instead (pages.or_page).
Both are thin over server/accounts.py, and both validate a body with the
same request model (api_schema), so each rule is stated once.
"""
from __future__ import annotations

from quart import Blueprint, jsonify
from quart_auth import logout_user

from .. import accounts, ratelimits
from .. import api_schema as schema
from ..api_schema import accepts, openapi, responds
from ..auth import current_principal, login_required, public, require_principal, start_session
from ..pages import or_page
from ..ratelimits import rate_limit
from . import account_pages as pages

blueprint = Blueprint("account", __name__)
blueprint.context_processor(pages.credential_rules)


def _account(user, session):
    return jsonify(id=user.id, username=user.username, device={"id": session.id, "name": session.device_name})


def _ok():
    return jsonify(ok=True)


@blueprint.get("/account/register")
@blueprint.get("/account/registet")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_register():
    return await pages.register_form()


@blueprint.post("/account/register")
@blueprint.post("/account/registet")
@responds({201: schema.Account})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.REGISTER)
@public
@or_page(pages.register)
@accepts(schema.Registration)
async def post_register(data: schema.Registration):
    user = await accounts.register(data.username, data.password)
    session = await start_session(user, pages.device_name(None))
    return _account(user, session), 201


@blueprint.get("/account/login")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_login():
    return await pages.login_form()


@blueprint.post("/account/login")
@responds({200: schema.Account})
@openapi(errors=(401,))
@rate_limit(limits=ratelimits.LOGIN)
@public
@or_page(pages.login)
@accepts(schema.Credentials)
async def post_login(data: schema.Credentials):
    user = await accounts.authenticate(data.username, data.password)
    session = await start_session(user, pages.device_name(data.device_name))
    return _account(user, session)


@blueprint.post("/account/logout")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@public  # logging out without a session is harmless and answers the same
@or_page(pages.logout)
async def post_logout():
    await accounts.log_out(await current_principal())
    logout_user()
    return _ok()


@blueprint.post("/account/password")
@responds({200: schema.PasswordChanged})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.PASSWORD)
@login_required
@or_page(pages.change_password)
@accepts(schema.PasswordChange)
async def post_password(data: schema.PasswordChange):
    """Change the password (accounts.change_password says what ends)."""
    changed = await accounts.change_password(await require_principal(), data.current_password,
                                             data.new_password, data.keep_tokens)
    return jsonify(ok=True, sessions_ended=changed.sessions_ended, tokens_ended=changed.tokens_ended)


@blueprint.get("/account/profile")
@responds({200: schema.Profile})
@rate_limit(limits=ratelimits.READ)
@login_required
@or_page(pages.profile)
async def get_profile():
    return jsonify(await accounts.profile(await require_principal()))


@blueprint.post("/account/tokens")
@responds({201: schema.TokenCreated})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.PASSWORD)  # each try is a password guess
@login_required
@or_page(pages.create_token)
@accepts(schema.NewToken)
async def post_token(data: schema.NewToken):
    made = await accounts.create_token(await require_principal(), data.name, data.password)
    record = made.record
    return jsonify(id=record.id, name=record.name, token=made.token, created_at=record.created_at), 201


@blueprint.delete("/account/tokens/<int:token_id>")
@blueprint.post("/account/tokens/<int:token_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@or_page(pages.revoke_token)
async def delete_token(token_id: int):
    await accounts.revoke_token(await require_principal(), token_id)
    return _ok()


@blueprint.delete("/account/sessions/<int:session_id>")
@blueprint.post("/account/sessions/<int:session_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@or_page(pages.revoke_device)
async def delete_device(session_id: int):
    if await accounts.revoke_device(await require_principal(), session_id):
        logout_user()
    return _ok()


@blueprint.post("/account/sessions/log-out-others")
@responds({200: schema.LoggedOutOthers})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@or_page(pages.log_out_other_devices)
async def log_out_other_devices():
    ended = await accounts.log_out_other_devices(await require_principal())
    return jsonify(ok=True, sessions_ended=ended)


@blueprint.patch("/account/sessions/<int:session_id>")
@blueprint.post("/account/sessions/<int:session_id>/rename")
@responds({200: schema.Renamed})
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@or_page(pages.rename_device)
@accepts(schema.DeviceRename)
async def rename_device(session_id: int, data: schema.DeviceRename):
    await accounts.rename_device(await require_principal(), session_id, data.name)
    return jsonify(id=session_id, name=data.name)


@blueprint.delete("/account/shares/<int:share_id>")
@blueprint.post("/account/shares/<int:share_id>/delete")
@responds({200: schema.Ok})
@openapi(errors=(403,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@or_page(pages.delete_share)
async def delete_share(share_id: int):
    await accounts.delete_share(await require_principal(), share_id)
    return _ok()
