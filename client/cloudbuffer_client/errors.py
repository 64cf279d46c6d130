"""Exit codes (docs/cli.md) and the one error the commands raise."""
from __future__ import annotations

OK = 0
EMPTY = 1  # empty buffer, or nothing found
USAGE = 2
REFUSED = 3  # not logged in, or the server refused
UNREACHABLE = 4  # cannot reach the server


class ClientError(Exception):
    """Ends the command: `message` (one line, saying what to do) goes to stderr."""

    def __init__(self, exit_code: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.code = code  # the server's `error`, when it answered one
