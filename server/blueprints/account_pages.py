"""The account's pages: the register and login forms, the profile and its
forms, as browsers post them. Thin views over server/accounts.py; the
routes, and the JSON answers to the same requests, are in account.py
(pages.or_page picks the one the caller wants).

A refusal of what was typed shows the form again with the sentence and
what was typed (never a password); everything else (not logged in, another
site's request, no such device) goes to the app's error page.
"""
from __future__ import annotations

from quart import redirect, render_template, request
from quart_auth import logout_user

from .. import accounts
from .. import api_schema as schema
from ..api_schema import accepted
from ..auth import Principal, current_principal, device_name_from_user_agent, require_principal, start_session
from ..credentials import MAX_PASSWORD, MIN_PASSWORD, USERNAME_PATTERN, clean_device_name
from ..errors import status_of
from ..forms import read_input
from ..pages import REFUSALS, form_again
from ..redirects import safe_next
from ..reveal_once import keep_new_token, take_new_token

# What the profile page confirms after a form's redirect (?done=…): fixed
# sentences only, so the address can never put words on the page.
PROFILE_NOTICES = {
    "device-renamed": "Device renamed.",
    "device-revoked": "Device revoked: it is logged out.",
    "token-revoked": "API token revoked: scripts using it are refused from now on.",
    "link-deleted": "Share link deleted: it no longer works.",
}


def credential_rules() -> dict:
    """The forms' own hints (HTML patterns are anchored already)."""
    return {"username_html_pattern": USERNAME_PATTERN.strip("^$"), "min_password": MIN_PASSWORD,
            "max_password": MAX_PASSWORD}


async def _typed() -> dict:
    """The form as posted, to fill it in again; empty if it could not be read."""
    try:
        return await read_input()
    except REFUSALS:
        return {}


def _text(data: dict, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def device_name(given: str | None) -> str:
    """The name the person gave this device, else one from its browser."""
    if given and given.strip():
        return clean_device_name(given)
    return device_name_from_user_agent(request.headers.get("User-Agent", ""))


async def register_form():
    return await render_template("account/register.html", next=safe_next(request.args.get("next")))


async def register():
    try:
        data = await accepted(schema.Registration, trimmed=("username",))
        user = await accounts.register(data.username, data.password)
    except REFUSALS as error:
        typed = await _typed()
        return await form_again("account/register.html", error, username=_text(typed, "username"),
                                next=safe_next(_text(typed, "next") or None))
    await start_session(user, device_name(None))
    return redirect(safe_next(data.next), 303)


async def login_form():
    return await render_template("account/login.html", next=safe_next(request.args.get("next")))


async def login():
    try:
        data = await accepted(schema.Credentials)
        user = await accounts.authenticate(data.username, data.password)
        name = device_name(data.device_name)
    except REFUSALS as error:
        typed = await _typed()
        return await form_again("account/login.html", error, username=_text(typed, "username"),
                                device_name=_text(typed, "device_name"),
                                next=safe_next(_text(typed, "next") or None))
    await start_session(user, name)
    return redirect(safe_next(data.next), 303)


async def logout():
    await accounts.log_out(await current_principal())
    logout_user()
    return redirect("/account/login", 303)


async def profile_page(principal: Principal, status: int, **context):
    context.setdefault("new_token", None)
    page = await render_template("account/profile.html", profile=await accounts.profile(principal), **context)
    return page, status


async def profile():
    principal = await require_principal()
    new_token = take_new_token()
    page, status = await profile_page(principal, 200, new_token=new_token,
                                      notice=PROFILE_NOTICES.get(request.args.get("done", "")))
    # The page with a token in it is kept nowhere, and never compressed
    # (server/compression.py leaves no-store answers alone: BREACH).
    return page, status, {"Cache-Control": "no-store"} if new_token else {}


async def change_password():
    principal = await require_principal()
    try:
        data = await accepted(schema.PasswordChange)
        changed = await accounts.change_password(principal, data.current_password, data.new_password,
                                                 data.keep_tokens)
    except REFUSALS as error:
        return await profile_page(principal, status_of(error), password_error=error.message)
    return await profile_page(principal, 200, password_changed={"sessions": changed.sessions_ended,
                                                                "tokens": changed.tokens_ended})


async def create_token():
    principal = await require_principal()
    try:
        data = await accepted(schema.NewToken)
        made = await accounts.create_token(principal, data.name, data.password)
    except REFUSALS as error:
        return await profile_page(principal, status_of(error), token_error=error.message)
    # Redirect-after-POST: reloading the page repeats the GET, not this POST.
    keep_new_token(made.record.name, made.token)
    return redirect("/account/profile#new-token-title", 303)


def done(notice: str):
    return redirect(f"/account/profile?done={notice}", 303)


async def revoke_token(token_id: int):
    await accounts.revoke_token(await require_principal(), token_id)
    return done("token-revoked")


async def revoke_device(session_id: int):
    if await accounts.revoke_device(await require_principal(), session_id):
        logout_user()
    return done("device-revoked")


async def log_out_other_devices():
    await accounts.log_out_other_devices(await require_principal())
    return redirect("/account/profile", 303)


async def rename_device(session_id: int):
    data = await accepted(schema.DeviceRename)
    await accounts.rename_device(await require_principal(), session_id, data.name)
    return done("device-renamed")


async def delete_share(share_id: int):
    await accounts.delete_share(await require_principal(), share_id)
    return done("link-deleted")
