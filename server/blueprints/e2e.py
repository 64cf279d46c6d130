"""The account's end-to-end encryption keys (server/e2e.py, docs/e2e.md):
/account/e2e and what changes it. JSON only: the app and the CLI do the
cryptography, a form could not."""
from __future__ import annotations

from quart import Blueprint, current_app, jsonify

from .. import api_schema as schema
from .. import e2e
from .. import ratelimits
from ..api_schema import accepts, openapi, responds
from ..auth import login_required, require_principal, verify_password
from ..credentials import MAX_PASSWORD
from ..errors import APIError
from ..forms import read_input, string_field
from ..models import users as users_model
from ..ratelimits import rate_limit

blueprint = Blueprint("e2e", __name__)


@blueprint.get("/account/e2e")
@responds({200: schema.E2EState})
@rate_limit(limits=ratelimits.READ)
@login_required
async def get_state():
    return jsonify(await e2e.state(await require_principal()))


@blueprint.post("/account/e2e/enable")
@responds({200: schema.E2EState})
@openapi(errors=(403, 409))
@rate_limit(limits=ratelimits.PASSWORD)
@login_required
@accepts(schema.E2EEnable)
async def post_enable():
    """Turns encryption on. It deletes the account's history (items, files
    and share links) in the same transaction, so the password is asked
    again, and the tries are limited like password changes."""
    principal = await require_principal()
    data = await read_input()
    password = string_field(data, "password", max_length=MAX_PASSWORD)
    user = await users_model.select_user_by_id(current_app.db.reader, principal.user_id)
    if user is None or not await verify_password(user.password_hash, password):
        raise APIError(403, "wrong_password", "That is not your password; turning encryption on needs it.")
    return jsonify(await e2e.enable(principal, data))


@blueprint.put("/account/e2e/device")
@responds({200: schema.E2EState})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.E2EDeviceRegistration)
async def put_device():
    return jsonify(await e2e.register_device(await require_principal(), await read_input()))


@blueprint.post("/account/e2e/epochs")
@responds({200: schema.E2EState})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.E2ERotation)
async def post_epoch():
    return jsonify(await e2e.rotate(await require_principal(), await read_input()))
