"""What a username, a password and a device name must be: one definition
for every door (register and password change, as forms or JSON, through
the request models of api_schema.py, which run these checks as their
fields' validators and state the patterns in the API description;
`cloudbuffer user add|passwd`). A refusal is problems.InvalidInput.

The password rule follows NIST SP 800-63B (§3.1.1.2 of revision 4): at
least 8 characters, any characters a person can type (spaces and all of
Unicode) and no composition rules, but not a value known to be commonly
used, expected or compromised: a list of the most used passwords
(server/data/common-passwords.txt, with its source and licence), one
character or a short pattern repeated (`aaaaaaaa`), a run such as
`12345678`, and context-specific words: the username and the service's
name, also with digits or symbols stuck on. Control characters are refused
too: they cannot be typed into a password field, and a NUL or newline
would behave differently in every client.
"""
from __future__ import annotations

import re
import string
import unicodedata
from functools import cache
from importlib import resources

from .problems import InvalidInput

# `\-`, not a bare `-` at the class's end: browsers read an HTML pattern
# attribute with the `v` flag, which refuses the bare one.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{2,31}$"
USERNAME_RULE = "A username has 3 to 32 letters, digits, dots, dashes or underscores, starting with a letter or digit."
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# No C0 or C1 control character (Unicode category Cc), stated in the API
# description as a pattern; password_problem checks the same thing.
PASSWORD_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
PASSWORD_RULE = (f"A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters, no control characters, and is "
                 "not a commonly used password, a repeated pattern, a run like 12345678, or your username.")
SERVICE_NAME = "cloudbuffer"
SHORT_PATTERN = 4  # `abcdabcd` is still a pattern; five characters repeated are left alone
_ADDED = string.digits + string.punctuation + string.whitespace
# A device name needs one visible character, as the API description says it
# (JSON Schema patterns are searched for, not anchored: "somewhere").
DEVICE_NAME_PATTERN = r"[^\x00-\x20\x7f]"
MAX_DEVICE_NAME = 64
_USERNAME = re.compile(USERNAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_C0 = re.compile(r"[\x00-\x1f\x7f]")


def check_username(username: str) -> str:
    # fullmatch: `$` alone would also match before a final newline.
    if not _USERNAME.fullmatch(username):
        raise InvalidInput("invalid_username", USERNAME_RULE)
    return username


def check_password(password: str, username: str | None = None) -> str:
    """`password`, or InvalidInput `invalid_password` saying why it is refused."""
    problem = password_problem(password, username)
    if problem is not None:
        raise InvalidInput("invalid_password", problem)
    return password


def check_new_password(password: str) -> str:
    """The rules that need nothing but the password (a request model's field
    validator); check_password_for_user adds the one that needs the user."""
    problem = _password_problem(password)
    if problem is not None:
        raise InvalidInput("invalid_password", problem)
    return password


def check_password_for_user(password: str, username: str) -> str:
    """The password is not built on its user's name (run by the account
    service, which knows whose password it is)."""
    if _built_on(password.casefold(), username.casefold()):
        raise InvalidInput("invalid_password", _USERNAME_PROBLEM)
    return password


def check_device_name(name: str) -> str:
    """A name a person gave a device or token, cleaned (clean_device_name)."""
    if len(name) > MAX_DEVICE_NAME:
        raise InvalidInput("invalid_input", f"'name' is longer than {MAX_DEVICE_NAME} characters.")
    return clean_device_name(name)


def clean_device_name(name: str) -> str:
    """Control characters dropped, spaces trimmed, at most MAX_DEVICE_NAME
    characters; InvalidInput if nothing is left."""
    name = _CONTROL_C0.sub("", name).strip()[:MAX_DEVICE_NAME]
    if not name:
        raise InvalidInput("invalid_device_name", "A device name cannot be empty.")
    return name


_USERNAME_PROBLEM = "A password cannot be your username, nor your username reversed or with digits or symbols added."


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why `password` is refused, in a sentence for the person choosing it;
    None if it is fine."""
    problem = _password_problem(password)
    if problem is None and username and _built_on(password.casefold(), username.casefold()):
        return _USERNAME_PROBLEM
    return problem


def _password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"A password needs at least {MIN_PASSWORD} characters; this one has {len(password)}."
    if len(password) > MAX_PASSWORD:
        return f"A password can have at most {MAX_PASSWORD} characters."
    if _CONTROL.search(password) or any(unicodedata.category(char) == "Cs" for char in password):
        return "A password cannot contain control characters (such as tab, newline or NUL) or broken Unicode."
    lowered = password.casefold()
    if lowered in common_passwords():
        return ("That is one of the most commonly used passwords, the first ones anyone guessing tries; "
                "choose another (a few unrelated words make a good one).")
    if _is_repeated(lowered):
        return "A password cannot be one character or a short pattern repeated (like aaaaaaaa or abcabcab)."
    if _is_run(lowered):
        return "A password cannot be a run of consecutive characters (like 12345678 or abcdefgh)."
    if _built_on(lowered, SERVICE_NAME):
        return "A password cannot be the name of this service, nor that name with digits or symbols added."
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list (lowercase); read once per process (warm_up loads it
    before the server takes requests)."""
    text = resources.files("server").joinpath("data/common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("# ") and line != "#")


def _is_repeated(password: str) -> bool:
    return any(all(password[i] == password[i - period] for i in range(period, len(password)))
               for period in range(1, SHORT_PATTERN + 1))


def _is_run(password: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(password, password[1:])}
    return steps in ({1}, {-1})


def _built_on(password: str, word: str) -> bool:
    """`password` is `word`, `word` reversed, or either with only digits,
    symbols and spaces around it (`alice`, `ecila`, `Alice2024!`)."""
    core = password.strip(_ADDED)
    word_core = word.strip(_ADDED)
    if password in (word, word[::-1]):
        return True
    return bool(word_core) and core in (word_core, word_core[::-1])
