"""What the domain refuses, said without HTTP.

Services (server/accounts.py, the credential rules in server/credentials.py,
the request models' validators in server/api_schema.py) raise these; they
know nothing of statuses or pages. errors.py maps each kind to its HTTP
status (PROBLEM_STATUSES) on the one error path, and a form view shows the
same sentence in its page.
"""
from __future__ import annotations


class Problem(Exception):
    """A refusal: a machine code (`invalid_username`) and a sentence for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(Problem):
    """A value breaks its rule (a field missing, too long, a weak password)."""


class InvalidCredentials(Problem):
    """A username and password that match no account."""


class WrongPassword(Problem):
    """The account's own password, asked again, was not right."""


class NotFound(Problem):
    """No such thing of this user's (a device, a token, a share link)."""


class Conflict(Problem):
    """The change collides with what exists (a username taken)."""
