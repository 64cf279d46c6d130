"""The account's end-to-end encryption keys (server/e2e.py, docs/e2e.md):
/account/e2e and what changes it. JSON only: the app and the CLI do the
cryptography, a form could not."""
from __future__ import annotations

from quart import Blueprint, jsonify

from .. import api_schema as schema
from .. import e2e
from .. import ratelimits
from ..api_schema import accepts, openapi, responds
from ..accounts import require_password
from ..auth import login_required, require_principal
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
async def post_enable(data: schema.E2EEnable):
    """Turns encryption on. It deletes the account's history (items, files
    and share links) in the same transaction, so the password is asked
    again, and the tries are limited like password changes."""
    principal = await require_principal()
    await require_password(principal, data.password, "That is not your password; turning encryption on needs it.")
    return jsonify(await e2e.enable(principal, data.model_dump(exclude_none=True)))


@blueprint.put("/account/e2e/device")
@responds({200: schema.E2EState})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.E2EDeviceRegistration)
async def put_device(data: schema.E2EDeviceRegistration):
    return jsonify(await e2e.register_device(await require_principal(), data.model_dump(exclude_none=True)))


@blueprint.post("/account/e2e/epochs")
@responds({200: schema.E2EState})
@openapi(errors=(409,))
@rate_limit(limits=ratelimits.ACCOUNT_WRITE)
@login_required
@accepts(schema.E2ERotation)
async def post_epoch(data: schema.E2ERotation):
    return jsonify(await e2e.rotate(await require_principal(), data.model_dump(exclude_none=True)))
