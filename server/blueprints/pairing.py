""""Add a device" (server/pairing.py): the logged-in device's side under
/account/pairings, the new device's side under /pair."""
from __future__ import annotations

import asyncio
import secrets
import time

from quart import Blueprint, current_app, jsonify, redirect, render_template, request

from .. import api_schema as schema
from .. import pairing
from .. import ratelimits
from ..api_schema import accepted, accepts, openapi, responds
from ..auth import (device_name_from_user_agent, login_required, public, require_principal,
                    start_session)
from ..errors import APIError
from ..forms import read_input
from ..models import pairings as pairings_model
from ..models import sessions as sessions_model
from ..models import users as users_model
from ..pages import REFUSALS, form_again, or_page
from ..ratelimits import rate_limit
from ..share_links import public_base_url, qr_svg
from ..services import services

blueprint = Blueprint("pairing", __name__)

CLAIM_COOKIE = "cloudbuffer_pairing"
CLAIM_HEADER = "X-Pairing-Claim"


async def _require_session():
    """Only a logged-in browser or app may vouch for a new device: an API
    token must not be a way to mint browser sessions."""
    principal = await require_principal()
    if principal.device_kind != "session":
        raise APIError(403, "session_required", "Adding a device needs a logged-in device, not an API token.")
    return principal


# --- the logged-in device ---------------------------------------------------------

@blueprint.get("/account/pair")
@rate_limit(limits=ratelimits.PAGE)
@login_required
async def get_pair_page():
    return await render_template("account/pair.html", seconds=pairing.PAIRING_SECONDS)


@blueprint.post("/account/pairings")
@responds({201: schema.PairingCode})
@openapi(errors=(403, 409))
@rate_limit(limits=ratelimits.PAIR_CREATE)
@login_required
@accepts(schema.PairingOffer)
async def post_pairing(data: schema.PairingOffer):
    """A code to show; with this device's ephemeral key as `payload` the code
    is derived from it (docs/e2e.md, flow A)."""
    principal = await _require_session()
    code, made = await pairing.start(principal.user_id, principal.device_id, data.payload or None)
    url = f"{public_base_url()}/pair?code={code}"
    svg = (await asyncio.to_thread(qr_svg, url)).decode()
    return jsonify(id=made.id, code=pairing.display_code(code), url=url, qr_svg=svg.split("?>", 1)[-1].strip(),
                   expires_at=made.expires_at), 201


@blueprint.get("/account/pairings/<int:pairing_id>")
@responds({200: schema.PairingState})
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_pairing(pairing_id: int):
    principal = await require_principal()
    found = await services().db.read(pairings_model.select_pairing, principal.user_id, pairing_id, time.time())
    if found is None:
        raise pairing.no_such_pairing()
    return jsonify(pairing.pairing_message(found))


async def _decide(pairing_id: int, approve: bool, payload: str | None = None):
    # A token decides only what it could have taken: a request (flow B),
    # whose device then joins as a token (post_join_complete).
    principal = await require_principal()
    token_id = principal.device_id if principal.device_kind == "token" else None
    decided = await pairing.decide(principal.user_id, token_id, pairing_id, approve, payload or None)
    return jsonify(pairing.pairing_message(decided))


@blueprint.post("/account/pairings/<int:pairing_id>/approve")
@responds({200: schema.PairingState})
@openapi(errors=(403, 409))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.PairingApproval)
async def approve_pairing(pairing_id: int, data: schema.PairingApproval):
    return await _decide(pairing_id, True, data.payload)


@blueprint.post("/account/pairings/<int:pairing_id>/refuse")
@responds({200: schema.PairingState})
@openapi(errors=(403, 409))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
async def refuse_pairing(pairing_id: int):
    return await _decide(pairing_id, False)


@blueprint.post("/account/pairings/claim")
@responds({200: schema.PairingState})
@openapi(errors=(403, 404))
@rate_limit(limits=ratelimits.PAIR_CLAIM)
@login_required
@accepts(schema.PairingTake)
async def take_request(data: schema.PairingTake):
    """Flow B (docs/e2e.md): take the code a new device shows, with this
    device's ephemeral key; approve or refuse it next. A terminal's API
    token may, for a terminal joining: that device becomes an API token
    too, never a browser session (see /pair/complete)."""
    principal = await require_principal()
    taken = await pairing.take_request(principal.user_id, principal.device_kind, principal.device_id, data.code,
                                       data.payload)
    return jsonify(pairing.pairing_message(taken))


# --- the new device ---------------------------------------------------------------

@blueprint.get("/pair/payload")
@responds({200: schema.PairingPayload})
@openapi({"parameters": [{"name": "code", "in": "query", "required": True,
                          "schema": {"type": "string", "minLength": 1, "maxLength": 32}}]}, errors=(404,))
@rate_limit(limits=ratelimits.PAIR_CLAIM)
@public
async def get_shown_payload():
    """The showing device's public key for a code, for a scanner that has no
    URL fragment; it checks the key hashes to the code (docs/e2e.md)."""
    found = await pairing.shown_payload(request.args.get("code", "")[:32])
    return jsonify(payload=pairing.shown_key(found), expires_at=found.expires_at)


@blueprint.post("/pair/requests")
@responds({201: schema.PairingRequested})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.PAIR_CLAIM)
@public
@accepts(schema.PairingJoinRequest)
async def post_join_request(data: schema.PairingJoinRequest):
    """Flow B: a new device, with no account, shows a code derived from its
    ephemeral key; a logged-in device takes it (POST /account/pairings/claim)."""
    code, claim, made = await pairing.request(data.device_name, data.payload)
    url = f"{public_base_url()}/account/pair?code={code}"
    svg = (await asyncio.to_thread(qr_svg, url)).decode()
    response = jsonify(code=pairing.display_code(code), url=url, qr_svg=svg.split("?>", 1)[-1].strip(), claim=claim,
                       expires_at=made.expires_at)
    response.status_code = 201
    return _with_claim_cookie(response, claim)


@blueprint.get("/pair")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_join_page():
    return await render_template("pair/join.html", code=request.args.get("code", "")[:32],
                                 device_name=device_name_from_user_agent(request.headers.get("User-Agent", "")))


def _with_claim_cookie(response, claim: str):
    response.set_cookie(CLAIM_COOKIE, claim, max_age=pairing.PAIRING_SECONDS, path="/pair", httponly=True,
                        samesite="Strict", secure=current_app.config["QUART_AUTH_COOKIE_SECURE"])
    return response


async def _join_page():
    """A browser's join form: the wait page, or the form again saying why not."""
    try:
        data = await accepted(schema.PairingRequest)
        claim, _ = await pairing.claim(data.code, data.device_name, data.payload or None)
    except REFUSALS as error:
        typed = await _typed()
        return await form_again("pair/join.html", error, code=typed.get("code", ""),
                                device_name=typed.get("device_name", ""))
    return _with_claim_cookie(redirect("/pair/wait", 303), claim)


async def _typed() -> dict:
    try:
        return await read_input()
    except REFUSALS:
        return {}


@blueprint.post("/pair")
@responds({201: schema.PairingClaim})
@openapi(errors=(404,))
@rate_limit(limits=ratelimits.PAIR_CLAIM)
@public
@or_page(_join_page)
@accepts(schema.PairingRequest)
async def post_join(data: schema.PairingRequest):
    claim, claimed = await pairing.claim(data.code, data.device_name, data.payload or None)
    response = jsonify(claim=claim, status=claimed.status, expires_at=claimed.expires_at)
    response.status_code = 201
    return _with_claim_cookie(response, claim)


def _claim() -> str:
    claim = request.headers.get(CLAIM_HEADER) or request.cookies.get(CLAIM_COOKIE)
    if not claim or len(claim) > 128:
        raise APIError(404, "invalid_claim", "This device is not waiting to join: enter the code again.")
    return claim


def _expired_claim() -> APIError:
    return APIError(404, "invalid_claim", "This request to join has expired: enter a new code.")


@blueprint.get("/pair/wait")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_wait_page():
    return await render_template("pair/wait.html")


@blueprint.get("/pair/status")
@responds({200: schema.PairingStatus})
@openapi(errors=(404,))
@rate_limit(limits=ratelimits.PAIR_WAIT)
@public
async def get_join_status():
    found = await services().db.read(pairings_model.select_pairing_by_claim, pairing.claim_digest(_claim()),
                                      time.time())
    if found is None:
        raise _expired_claim()
    return jsonify(status=found.status, expires_at=found.expires_at, offer_payload=found.offer_payload)


def _take_approved(conn, digest: bytes, now: float, token: str | None):
    """The approval taken and, for the CLI, its API token made, in one
    transaction: a token is never left without its pairing used up."""
    found = pairings_model.select_pairing_by_claim(conn, digest, now)
    if found is not None and found.status == "approved" and found.token_id is not None and token is None:
        raise APIError(403, "session_required", "A terminal's API token approved this device, so it can join "
                                                'as an API token only ({"as": "token"}), not as a logged-in browser.')
    taken = pairings_model.take_approved_pairing(conn, digest, now)
    if taken is None or token is None:
        return taken, None
    return taken, sessions_model.insert_api_token(conn, taken.user_id, taken.device_name, token)


@blueprint.post("/pair/complete")
@responds({200: schema.PairingDone})
@openapi(errors=(404, 409))
@rate_limit(limits=ratelimits.PAIR_WAIT)
@public
@accepts(schema.PairingCompletion)
async def post_join_complete(data: schema.PairingCompletion):
    """The approved device becomes a session of the account (its cookie is
    set), or with `{"as": "token"}` an API token named as it asked (the CLI)."""
    digest = pairing.claim_digest(_claim())
    token = "cb_" + secrets.token_urlsafe(32) if data.as_ == "token" else None
    taken, api_token = await services().db.write(_take_approved, digest, time.time(), token)
    if taken is None:
        found = await services().db.read(pairings_model.select_pairing_by_claim, digest, time.time())
        if found is None:
            raise _expired_claim()
        if found.status == "refused":
            raise APIError(409, "refused", "The other device refused this one.")
        raise APIError(409, "not_approved", "The other device has not answered yet.")
    user = await services().db.read(users_model.select_user_by_id, taken.user_id)
    if token is not None:
        response = jsonify(id=user.id, username=user.username,
                           device={"id": api_token.id, "name": api_token.name, "kind": "token"},
                           payload=taken.approval_payload, token=token)
    else:
        session = await start_session(user, taken.device_name)
        response = jsonify(id=user.id, username=user.username,
                           device={"id": session.id, "name": session.device_name, "kind": "session"},
                           payload=taken.approval_payload)
    response.delete_cookie(CLAIM_COOKIE, path="/pair")
    return response
