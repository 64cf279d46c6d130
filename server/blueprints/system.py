"""Operational endpoints."""
from __future__ import annotations

from quart import Blueprint, jsonify

from .. import __version__
from ..auth import public
from ..ratelimits import rate_exempt
from ..api_schema import responds
from .. import api_schema as schema
from ..services import services

blueprint = Blueprint("system", __name__)


@blueprint.get("/healthz")
@responds({200: schema.Health, 503: schema.Health})
@rate_exempt  # load balancers poll it; one cheap query
@public
async def get_health():
    db_ok = await services().db.ping()
    broker = services().broker
    status = "ok" if db_ok and broker.status == "ok" else ("degraded" if db_ok else "down")
    body = {
        "status": status,
        "version": __version__,
        "db": "ok" if db_ok else "down",
        "broker": {"backend": broker.name, "status": broker.status},
    }
    # A degraded broker still serves HTTP (pushes resume on reconnect), so only
    # a dead database makes this instance unhealthy for a load balancer.
    return jsonify(body), 200 if db_ok else 503
