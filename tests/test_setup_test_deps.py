"""tools/setup-test-deps, the one list of system packages the tests need
(called by `make test` and .ci/run): nothing to do when all are there; as
anyone but root, one line saying what to run, before pytest starts; as root,
apt-get (shown here with --dry-run, which says what it would run).

A package is made to look missing by running the script with a PATH that
leaves its program out; the other user is the real `nobody` (setpriv)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "setup-test-deps"
SETPRIV = [shutil.which("setpriv", path="/usr/bin:/bin") or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # as on a fresh machine (no pyenv shims, no .venv)


@pytest.fixture
def world_readable_dir():
    """A scratch dir `nobody` can read (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="setup-test-deps-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def path_without(directory: Path, *left_out: str) -> str:
    """A PATH holding the programs the checks use, less `left_out`."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for program in ("bash", "python3", "make", "curl", "redis-server", "env", "sh", "npm", "caddy", "Xvfb", "xclip"):
        if program not in left_out:
            (bin_dir / program).symlink_to(shutil.which(program, path=SYSTEM_PATH))
    return str(bin_dir)


def run(*command: str, path: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {"PATH": path or SYSTEM_PATH, "LANG": "C.UTF-8"}
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_nothing_missing_nothing_said():
    result = run(str(SCRIPT))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_anyone_but_root_gets_one_line_with_the_command(world_readable_dir):
    script = world_readable_dir / "setup-test-deps"
    shutil.copy(SCRIPT, script)
    path = path_without(world_readable_dir, "redis-server", "curl")
    result = run(*SETPRIV, str(script), path=path, cwd=world_readable_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"setup-test-deps: the tests need redis-server curl, which this machine lacks; install them with: "
        f"sudo {script} (it runs apt-get install redis-server curl)"]


def test_make_test_stops_before_pytest(world_readable_dir):
    """As `nobody`, on a machine without redis-server: `make test` ends at
    the one line, pytest never starts (-o: .venv counts as made)."""
    shutil.copy(REPO / "Makefile", world_readable_dir / "Makefile")
    (world_readable_dir / "tools").mkdir()
    shutil.copy(SCRIPT, world_readable_dir / "tools" / "setup-test-deps")
    path = path_without(world_readable_dir, "redis-server")
    result = run(*SETPRIV, shutil.which("make", path=SYSTEM_PATH), "--no-print-directory", "-o", ".venv/.installed-test", "test",
                 path=path, cwd=world_readable_dir)
    assert result.returncode != 0
    assert "the tests need redis-server" in result.stderr.splitlines()[0]
    assert "pytest" not in result.stdout + result.stderr


def test_as_root_it_would_install_what_is_missing(tmp_path):
    assert os.geteuid() == 0, "the suite runs as root here (CI does too)"
    result = run(str(SCRIPT), "--dry-run", path=path_without(tmp_path, "redis-server", "make"))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [
        "setup-test-deps: would run: apt-get update -qq && "
        "apt-get install -y -qq --no-install-recommends redis-server make"]


def test_the_list_is_what_the_ci_and_the_readme_rely_on():
    """One list, one script: .ci/run and `make test` call it, and keep no
    package list of their own."""
    text = SCRIPT.read_text()
    packages = text.split("PACKAGES='", 1)[1].split("'\n", 1)[0]
    names = [line.split()[0] for line in packages.splitlines() if line.strip()]
    assert names == ["redis-server", "chromium", "curl", "make", "python3-venv", "npm", "caddy", "xvfb", "xclip",
                     "postgresql"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "tools/setup-test-deps" in ci and "apt-get" not in ci
    assert "\t@tools/setup-test-deps" in (REPO / "Makefile").read_text()
    assert sys.executable  # the suite itself runs in .venv, made after the check
