"""/docs: the API reference, rendered on the server from /openapi.json.

quart-schema's Swagger, Redoc and Scalar pages load their scripts from CDNs,
which the app's Content-Security-Policy (script-src 'self') blocks, and
relaxing it for one page would let that page run someone else's code next
to the user's session. This page needs no script at all.
"""
from __future__ import annotations

import json

from quart import Blueprint, current_app, jsonify, render_template

from .. import ratelimits
from ..auth import public
from ..ratelimits import rate_limit

blueprint = Blueprint("api_docs", __name__)

METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def _resolve(schema: dict, spec: dict) -> dict:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return spec["components"]["schemas"].get(ref.rsplit("/", 1)[1], schema)
    return schema


def _operations(spec: dict) -> list[dict]:
    operations = []
    for path, methods in sorted(spec["paths"].items()):
        for method in sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 9):
            operation = methods[method]
            body = operation.get("requestBody", {}).get("content", {})
            operations.append({
                "id": operation.get("operationId", f"{method}-{path}"),
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "auth": bool(operation.get("security")),
                "parameters": operation.get("parameters", []),
                "body": {media: json.dumps(_resolve(content.get("schema", {}), spec), indent=2)
                         for media, content in body.items()},
                "responses": [
                    {"status": status, "description": response.get("description", ""),
                     "media": ", ".join(response.get("content", {})) or "no body",
                     "schema": next((json.dumps(_resolve(c.get("schema", {}), spec), indent=2)
                                     for c in response.get("content", {}).values()
                                     if c.get("schema", {}).get("$ref") != "#/components/schemas/Error"), "")}
                    for status, response in sorted(operation.get("responses", {}).items())
                ],
            })
    return operations


def openapi_spec() -> dict:
    """The description; routes do not change while the app runs, so once."""
    app = current_app._get_current_object()
    if not hasattr(app, "openapi_spec_"):
        app.openapi_spec_ = app.extensions["QUART_SCHEMA"].openapi_provider.schema()
    return app.openapi_spec_


@blueprint.get("/openapi.json")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_openapi():
    return jsonify(openapi_spec())


@blueprint.get("/docs")
@rate_limit(limits=ratelimits.PAGE)
@public
async def get_docs():
    spec = openapi_spec()
    return await render_template("api_docs/index.html", spec=spec, operations=_operations(spec))
