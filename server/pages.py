"""Pages for people beside the JSON API, over the same services.

A route that serves both keeps its JSON handler as the route's function
and names its page view with `@or_page(view)`: whether the caller wants
JSON (errors.wants_json: a script, the app's fetch()) or a page (a browser
posting a form or navigating) is decided here, once per request, instead of
in every handler. The view calls the same service functions, validates its
body with the same request model (api_schema.accepted), and answers with a
redirect or a page; a refusal it does not show in its own page (the form
again, with what was typed) goes to the app's error path like any other.
"""
from __future__ import annotations

from functools import wraps

from quart import render_template

from .errors import APIError, status_of, wants_json
from .problems import Problem

# What a form view catches to show in its page: a refusal of what was typed.
REFUSALS = (APIError, Problem)


def or_page(view):
    """Route decorator: browsers get `view` (same arguments), API callers
    the decorated handler. Put it below the decorators both share (auth,
    rate limits, the description) and above @accepts, which is the API's."""

    def decorator(handler):
        @wraps(handler)
        async def negotiated(*args, **kwargs):
            if wants_json():
                return await handler(*args, **kwargs)
            return await view(*args, **kwargs)

        return negotiated

    return decorator


async def form_again(template: str, error: APIError | Problem, **context) -> tuple[str, int]:
    """The form's page once more, saying what was refused, with its status."""
    return await render_template(template, error=error.message, **context), status_of(error)
