"""server/auth.py: what the blueprint tests do not reach."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import server.auth
from server import create_app

REAL_DUMMY_HASH = server.auth._dummy_hash  # before any test's patch

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


async def test_the_server_makes_the_dummy_hash_before_serving_and_logins_reuse_it(monkeypatch, settings):
    # The real, cached function (the tests' fast hasher patches the name
    # for every test, not the function kept here).
    monkeypatch.setattr(server.auth, "_dummy_hash", REAL_DUMMY_HASH)
    REAL_DUMMY_HASH.cache_clear()
    app = create_app(settings)
    async with app.test_app():
        assert REAL_DUMMY_HASH.cache_info().currsize == 1  # made by the startup, before any login
        assert await server.auth.verify_password(None, "anything") is False
        assert await server.auth.verify_password(None, "anything else") is False
    info = REAL_DUMMY_HASH.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    REAL_DUMMY_HASH.cache_clear()
