"""A secret shown once across a redirect-after-POST (a new API token).

The POST that makes the token answers 303 to the profile page, so a reload
repeats the GET and never makes another token. The token rides to that GET
in Quart's signed session cookie (HttpOnly, SameSite=Strict, path /account,
a minute at most) and is dropped from it as it is shown: the next load of
the page no longer has it, and only its hash was ever stored.
"""
from __future__ import annotations

from quart import Quart, session

KEY = "new_token"
COOKIE_SECONDS = 60


def init_reveal_once(app: Quart, secure: bool) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="cloudbuffer_once",
        SESSION_COOKIE_PATH="/account",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=COOKIE_SECONDS,
    )


def keep_new_token(name: str, token: str) -> None:
    session.permanent = True  # Max-Age, so an unread token does not outlive a minute
    session[KEY] = {"name": name, "token": token}


def take_new_token() -> dict | None:
    """The token kept by the POST, once; None afterwards."""
    if KEY not in session:
        return None
    kept = session.pop(KEY)
    session.clear()  # an empty session deletes the cookie
    return kept
