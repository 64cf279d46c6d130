"""The one `cloudbuffer` command, with and without the server installed."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client" / "cloudbuffer_client"


def test_the_client_imports_nothing_from_the_server():
    for path in CLIENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(name == "server" or name.startswith("server.") for name in names), path


def test_client_only_serve_and_user_say_the_server_is_not_installed(tmp_path):
    # `server` made unimportable, as on a laptop with only cloudbuffer-client.
    code = ("import sys; sys.modules['server'] = None; sys.modules['server.cli'] = None\n"
            "from cloudbuffer_client.cli import main; sys.exit(main(sys.argv[1:]))")
    for argv in (["serve"], ["user", "add", "alice"]):
        result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, cwd=tmp_path, timeout=30)
        assert result.returncode == 2
        assert b"server, which is not installed here" in result.stderr
        assert result.stderr.count(b"\n") == 1


def test_the_one_command_answers_server_and_client_commands(cli):
    help_text = cli.run("--help").stdout.decode()
    for command in ("serve", "user", "login", "logout", "copy", "paste", "history", "get", "watch", "share", "agent"):
        assert command in help_text
    assert b"--workers" in cli.run("serve", "--help").stdout
    # and through the server's own entry point too
    result = subprocess.run([sys.executable, "-m", "server.cli", "paste"], capture_output=True, timeout=30,
                            env=cli.env, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 3 and b"not logged in" in result.stderr
