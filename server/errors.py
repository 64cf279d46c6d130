"""One error path: one JSON shape for the API, one friendly page for people.

Two kinds of refusal arrive here: APIError, raised where HTTP is the
subject (a header, a body's size, who is asking), and the domain's
problems.Problem, raised by services that know nothing of HTTP, whose
status PROBLEM_STATUSES gives."""
from __future__ import annotations

import logging
import math
from urllib.parse import quote

from quart import Quart, Response, has_request_context, jsonify, redirect, render_template, request, websocket
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import WebsocketMismatch

from .db import DatabaseUnavailable
from .log_safety import request_for_log
from .problems import Conflict, InvalidCredentials, InvalidInput, NotFound, Problem, WrongPassword
from .redirects import safe_next

log = logging.getLogger(__name__)

# Werkzeug's own exceptions (404 from routing, 405, 413 from Quart's body
# limit, …) get machine codes too, so every answer has the same shape.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}

_HTTP_MESSAGES = {
    401: "You need to log in (or send an API token) to do that.",
    404: "There is nothing here. The link may have expired or been mistyped.",
    405: "This address does not accept that method.",
    413: "That upload is larger than this server accepts.",
    429: "Too many requests. Please wait a little before trying again.",
    500: "Something went wrong on our side. Nothing you sent was half-saved; please try again.",
}


DATABASE_UNAVAILABLE = ("The server cannot reach its database right now. Nothing you sent was saved; "
                        "please try again in a few seconds.")


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class RateLimited(APIError):
    """429 with the whole seconds to wait, as Retry-After for HTTP and as
    `retry_after` in the live socket's error message."""

    def __init__(self, wait: float, message: str) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(429, "rate_limited", f"{message} Please wait {self.retry_after} s before trying again.",
                         {"Retry-After": str(self.retry_after)})


# Each kind of domain refusal, as HTTP says it.
PROBLEM_STATUSES: dict[type[Problem], int] = {
    InvalidInput: 400,
    InvalidCredentials: 401,
    WrongPassword: 403,
    NotFound: 404,
    Conflict: 409,
}


def status_of(error: APIError | Problem) -> int:
    """The HTTP status of a refusal of either kind."""
    if isinstance(error, APIError):
        return error.status
    for kind in type(error).__mro__:
        if kind in PROBLEM_STATUSES:
            return PROBLEM_STATUSES[kind]
    return 400


def internal_error() -> APIError:
    """What a client is told about an unexpected error (it is logged, not shown)."""
    return APIError(500, "internal_error", _HTTP_MESSAGES[500])


def incoming():
    """What is being answered: the request, or a WebSocket handshake that the
    live socket handed to Quart to refuse (server/live/connection.py)."""
    return request if has_request_context() else websocket


def wants_json() -> bool:
    """Scripts and the app's fetch() get JSON; a browser navigating gets a
    page. A WebSocket's refusal is read by code (the browser hands scripts
    no page), so it is JSON."""
    if not has_request_context():
        return True
    if request.is_json or "Authorization" in request.headers:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best != "text/html"


async def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = jsonify(error=code, message=message)
    elif status == 401 and request.method in ("GET", "HEAD"):
        # A person opening a page while logged out is sent to log in and
        # brought back afterwards, rather than shown an error.
        target = safe_next(request.full_path.rstrip("?") if request.query_string else request.path)
        response = redirect(f"/account/login?next={quote(target, safe='/')}", 303)
        response.headers.update(headers or {})
        return response
    elif status == 429 and request.method == "POST" and request.endpoint in FORM_PAGES:
        # A person who tried too often gets the form back with the wait in
        # it, and what they typed, rather than a bare error page.
        response = Response(await _form_page_again(FORM_PAGES[request.endpoint], message),
                            content_type="text/html; charset=utf-8")
    else:
        response = Response(
            await render_template("error.html", status=status, code=code, message=message),
            content_type="text/html; charset=utf-8",
        )
    response.status_code = status
    response.headers.update(headers or {})
    if has_request_context() and _body_unread():
        # Answered before the request body was all received (413, 401, …):
        # Hypercorn closes the connection after this response, as the request
        # can never complete. Saying so lets a keep-alive client (httpx,
        # requests.Session) open a new connection for its next request
        # instead of sending it down this one as it closes.
        response.headers["Connection"] = "close"
    return response


# The forms whose rate-limited POST answers with the form itself.
FORM_PAGES = {"account.post_login": "account/login.html", "account.post_register": "account/register.html"}


async def _form_page_again(template: str, message: str) -> str:
    from .forms import read_input  # the body the rate limiter's username key already read

    try:
        data = await read_input()
    except APIError:
        data = {}
    username = data.get("username") if isinstance(data.get("username"), str) else ""
    next_page = data.get("next") if isinstance(data.get("next"), str) else None
    return await render_template(template, error=message, username=username[:64], next=safe_next(next_page))


def _body_unread() -> bool:
    declared = request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    # Quart's own Body (server/patches/request_body.py left off) cannot say:
    # then the header is left out, and the client learns of the close as it happens.
    return bool(declared) and not getattr(request.body, "complete", True)


def _method_not_allowed_message(method: str, allowed) -> str:
    message = f"This address does not accept {method}; it accepts {', '.join(sorted(allowed))}."
    if method == "PUT" and "POST" in allowed:
        # curl -T (upload a file) sends PUT unless told otherwise.
        message += " With curl -T, add -X POST."
    return message


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(APIError)
    async def handle_api_error(error: APIError) -> Response:
        return await error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(DatabaseUnavailable)
    async def handle_database_unavailable(error: DatabaseUnavailable) -> Response:
        # Said once per failure, without the request's data; the transaction
        # did not commit (db.py), so the client may simply try again.
        log.warning("database unavailable on %s: %s", request_for_log(incoming()), error)
        return await error_response(503, "database_unavailable", DATABASE_UNAVAILABLE, {"Retry-After": "5"})

    @app.errorhandler(Problem)
    async def handle_problem(error: Problem) -> Response:
        return await error_response(status_of(error), error.code, error.message)

    @app.errorhandler(WebsocketMismatch)
    async def handle_websocket_mismatch(error: WebsocketMismatch) -> Response:
        # A WebSocket to a page's address, or a plain request to /ws: as
        # nothing is there for the way it came, a 404 like any unknown path.
        return await handle_http_exception(NoRoute())

    @app.errorhandler(HTTPException)
    async def handle_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 405 and not has_request_context():
            # A WebSocket to an address with HTTP methods only: no WebSocket
            # is there, whatever else is (werkzeug says 405 first).
            return await handle_http_exception(NoRoute())
        code = _HTTP_CODES.get(status, "error")
        message = _HTTP_MESSAGES.get(status) or error.description or code
        valid_methods = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(valid_methods)} if valid_methods else {}
        if status == 405 and valid_methods:
            message = _method_not_allowed_message(incoming().method, valid_methods)
        retry_after = getattr(error, "retry_after", None)  # quart-rate-limiter's RateLimitExceeded
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(retry_after)))
            message = f"Too many requests. Please wait {max(1, int(retry_after))} s before trying again."
        return await error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    async def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s", request_for_log(incoming()))
        error = internal_error()
        return await error_response(error.status, error.code, error.message)
