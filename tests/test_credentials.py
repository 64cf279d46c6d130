"""The password rule (NIST SP 800-63B) and the username rule, one definition
(server/credentials.py) behind every door: registering and changing the
password, as forms and as JSON, through the real server; `cloudbuffer user
add` and `passwd`."""
from __future__ import annotations

import html
import subprocess

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.credentials import MAX_PASSWORD, common_passwords, password_problem
from tests.conftest import PASSWORD
from tests.helpers import BROWSER_ACCEPT
from tests.live_server import cloudbuffer_executable, live_server_factory  # noqa: F401  (fixture)

# What registered before (the issue's list), each with the words its
# refusal must use, so the person knows what to change.
WEAK = [
    ("password", "commonly used"),
    ("12345678", "commonly used"),
    ("aaaaaaaa", "repeated"),
    (" " * 8, "repeated"),
    ("\x00" * 8, "control characters"),
    ("abcdefgh", "run of consecutive"),
    ("Trustno1", "commonly used"),  # the list ignores case
    ("short", "at least 8 characters"),
    ("x" * (MAX_PASSWORD + 1), "at most 1024"),
    ("tab\tinside", "control characters"),
    ("cloudbuffer2024", "name of this service"),
]
USERNAME = "mallorie"
LIKE_THE_USERNAME = ["mallorie", "MALLORIE", "eirollam", "Mallorie2024!", "  mallorie  "]
STRONG = [PASSWORD, "a new and better passphrase", "Tr0ub4dor&3 horse", "pässwörd mit ümläuten", "密码是很长的一句话"]


@pytest.mark.parametrize("password, words", WEAK)
def test_weak_passwords_are_refused_with_a_reason(password, words):
    problem = password_problem(password, USERNAME)
    assert problem is not None and words in problem, (password, problem)


@pytest.mark.parametrize("password", LIKE_THE_USERNAME)
def test_the_username_and_what_is_built_on_it_are_refused(password):
    assert "username" in password_problem(password, USERNAME)
    assert password_problem(password, "someone") in (None, password_problem(password))


@pytest.mark.parametrize("password", STRONG)
def test_ordinary_good_passwords_pass(password):
    assert password_problem(password, USERNAME) is None


def test_the_shipped_list_is_the_common_passwords():
    passwords = common_passwords()
    assert len(passwords) == 11611
    assert {"password", "12345678", "iloveyou", "sunshine", "qwertyuiop"} <= passwords
    assert all(len(entry) >= 8 and entry == entry.lower() for entry in passwords)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40), st.text(max_size=40))
def test_every_refusal_is_a_sentence(password, username):
    problem = password_problem(password, username)
    assert problem is None or (problem.endswith(".") and len(problem) > 30)


def refusal(response) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    if response.headers["content-type"].startswith("application/json"):
        body = response.json()
        assert body["error"] == "invalid_password"
        return body["message"]
    assert response.headers["content-type"].startswith("text/html")
    return html.unescape(response.text)


def test_every_door_refuses_the_issue_passwords(live_server_factory, tmp_path):  # noqa: F811
    """Register (JSON and form) and change the password (JSON and form)
    against the real server; nothing is created or changed."""
    server = live_server_factory(tmp_path / "data", env={"CLOUDBUFFER_RATE_LIMITS": "false"})
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for password, words in WEAK + [(name, "username") for name in LIKE_THE_USERNAME[:2]]:
            body = {"username": USERNAME, "password": password}
            assert words in refusal(http.post("/account/register", json=body)), password
            assert words in refusal(http.post("/account/register", data=body, headers={"Accept": BROWSER_ACCEPT}))
        assert http.post("/account/login", json={"username": USERNAME, "password": PASSWORD}).status_code == 401

        assert http.post("/account/register", json={"username": USERNAME, "password": PASSWORD}).status_code == 201
        for password, words in WEAK + [(name, "username") for name in LIKE_THE_USERNAME]:
            body = {"current_password": PASSWORD, "new_password": password}
            assert words in refusal(http.post("/account/password", json=body)), password
            page = refusal(http.post("/account/password", data=body, headers={"Accept": BROWSER_ACCEPT}))
            assert words in page and 'action="/account/password"' in page
        # The password is still the old one.
        assert http.post("/account/login", json={"username": USERNAME, "password": PASSWORD}).status_code == 200


def test_the_command_line_refuses_them_too(live_server_factory, tmp_path):  # noqa: F811
    server = live_server_factory(tmp_path / "data", start=False)

    def cli(*args: str, password: str) -> subprocess.CompletedProcess:
        return subprocess.run([cloudbuffer_executable(), "user", *args, "--password-stdin"], input=password + "\n",
                              capture_output=True, text=True, timeout=30, env=server.environment())

    for password, words in WEAK[:5] + [("mallorie", "username")]:
        result = cli("add", USERNAME, password=password)
        assert result.returncode != 0 and words in result.stderr, (password, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert cli("add", USERNAME, password=PASSWORD).returncode == 0
    for password, words in WEAK[:5] + [("Mallorie2024!", "username")]:
        result = cli("passwd", USERNAME, password=password)
        assert result.returncode != 0 and words in result.stderr, (password, result.stderr)
    server.start()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/account/login", json={"username": USERNAME, "password": PASSWORD}).status_code == 200
