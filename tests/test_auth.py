"""server/auth.py: what the blueprint tests do not reach."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import server.auth

REPO = Path(__file__).resolve().parent.parent


def test_importing_the_server_computes_no_password_hash():
    # The unknown-user dummy hash was made at import: a tenth of a second of
    # argon2 for every worker start and every `cloudbuffer user …` command.
    probe = ("import argon2\n"
             "def refuse(*args, **kwargs):\n"
             "    raise SystemExit('an argon2 hash was computed at import')\n"
             "argon2.PasswordHasher.hash = refuse\n"
             "import server, server.auth, server.cli, server.serving\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_warm_up_makes_the_dummy_hash_once_and_logins_use_it(monkeypatch):
    made = []

    def dummy_hash():
        made.append(1)
        return server.auth._hasher.hash("the dummy")

    # The real one, behind the cache the tests' fast hasher replaces.
    monkeypatch.setattr(server.auth, "_dummy_hash", server.auth.cache(dummy_hash))
    await server.auth.warm_up_password_checks()
    assert made == [1]
    assert await server.auth.verify_password(None, "the dummy") is False  # an unknown user never passes
    assert await server.auth.verify_password(None, "anything") is False
    assert made == [1]
