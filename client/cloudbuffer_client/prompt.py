"""Questions to the person at the terminal; a pipe answers them line by
line instead (scripts and tests), and a closed stdin is a no."""
from __future__ import annotations

import getpass
import sys

from .errors import USAGE, ClientError


def secret(prompt: str) -> str:
    if sys.stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            raise ClientError(USAGE, "cancelled") from None
    return sys.stdin.readline().rstrip("\r\n")


def line(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():
        print(file=sys.stderr)  # the pipe's answer is not echoed: end the prompt's line
    return answer.strip()


def confirm(prompt: str) -> bool:
    """Only "y" or "yes" is a yes."""
    return line(prompt + " [y/N] ").lower() in ("y", "yes")
