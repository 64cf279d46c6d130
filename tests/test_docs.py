"""Conventions the docs must keep (Datasette-style): every setting
documented, and the curl examples work as written."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx

from server.config import SETTINGS
from tests.live_server import live_server_factory, new_user  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `CLOUDBUFFER_([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert {setting.name for setting in SETTINGS} <= rows


def test_every_environment_variable_the_code_reads_is_documented():
    readme = (ROOT / "README.md").read_text()
    used = set()
    for path in (ROOT / "server").rglob("*.py"):
        used.update(re.findall(r"CLOUDBUFFER_([A-Z0-9_]+)", path.read_text()))
    used |= {setting.name for setting in SETTINGS}
    used.discard("")
    missing = sorted(name for name in used if f"`CLOUDBUFFER_{name}`" not in readme)
    assert missing == []


def test_every_setting_has_help_text():
    for setting in SETTINGS:
        assert len(setting.help) > 20, setting.name


STRICT_CURL = 'curl() { command curl -sS --fail-with-body "$@"; }\n'  # any 4xx or 5xx fails the script


def _sh_blocks(path: Path, heading: str) -> list[str]:
    """The ```sh blocks of one section of a Markdown file."""
    section = path.read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```sh\n")[1:]]


def _bash(script: str, cwd: Path, env: dict[str, str], strict_curl: bool) -> bytes:
    """Run `script` as the docs' reader would, with no proxy settings and no
    ~/.curlrc of whoever runs the tests; its output."""
    assert shutil.which("curl"), "the docs' examples need curl"
    prelude = "set -eo pipefail\n" + (STRICT_CURL if strict_curl else "")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8", **env}
    result = subprocess.run(["bash", "-c", prelude + script], cwd=cwd, env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, (script, result.stdout[-500:], result.stderr[-2000:])
    return result.stdout


def _commands(block: str) -> list[str]:
    """A shell block one command per entry (continuation lines joined),
    comments and blank lines left out."""
    commands, current = [], ""
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.split(" #", 1)[0].rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(current.strip())
        current = ""
    return commands


def test_the_readme_curl_quick_start_works_as_written(live_server_factory, tmp_path):  # noqa: F811
    """Each command of the README's quick-start, run by bash against a real
    server, must succeed (curl --fail-with-body: any 4xx or 5xx fails it), and
    what the file commands store must come back. The examples' own files and
    the placeholder token are the only things swapped in."""
    server = live_server_factory(tmp_path / "data")
    work = tmp_path / "client"
    work.mkdir()
    log = work / "syslog"
    log.write_bytes(b"Nov 27 server: a log line\n" * 1000)
    (work / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 a tiny jpeg")
    (work / "report.pdf").write_bytes(b"%PDF-1.4 a tiny report")
    commands = _commands(_sh_blocks(ROOT / "README.md", "## curl quick-start")[0])
    assert commands[0] == "B=http://127.0.0.1:8000"
    token = None
    outputs = []
    for command in commands[1:]:
        command = command.replace("/var/log/syslog", str(log))
        if "cb_…" in command:
            assert token is not None, "the README uses a token before it makes one"
            command = command.replace("cb_…", token)
        outputs.append(_bash(command, work, {"B": server.base_url}, strict_curl=True))
        if "/account/tokens" in command:
            token = json.loads(outputs[-1])["token"]
    assert b"hello from the laptop" in outputs
    assert (work / "server.log").read_bytes() == log.read_bytes()  # `-OJ` saved the streamed file under its name
    assert outputs[-1] == (work / "photo.jpg").read_bytes()  # the token reads the buffer: the last file set
    share = json.loads(next(output for output in outputs if b'"qr_url"' in output))
    assert share["url"].startswith(f"{server.base_url}/file/get?token=")


def test_the_api_docs_script_examples_work_as_written(live_server_factory, tmp_path):  # noqa: F811
    """docs/api.md's Scripts section, run by bash against a real server: the
    token recipe, then the one-liners as one script (`set -e`, pipefail),
    with the token the recipe printed."""
    server = live_server_factory(tmp_path / "data")
    new_user(server, "alice")  # the recipe logs in as alice
    work = tmp_path / "client"
    (work / "notes").mkdir(parents=True)  # ~/notes: the work dir is the script's home
    (work / "notes" / "todo.txt").write_text("water the plants\n")
    (work / "Relevé de compte.pdf").write_bytes(b"%PDF-1.4 a statement")
    token_recipe, one_liners = _sh_blocks(ROOT / "docs" / "api.md", "## Scripts")
    env = {"CB": server.base_url}

    # The recipe has no -f of its own: strict curl makes any error status fail it.
    printed = _bash(token_recipe, work, env, strict_curl=True).decode()  # three JSON answers, back to back
    token = re.search(r'"token":\s*"(cb_[^"]+)"', printed).group(1)
    assert not (work / "cookies.txt").exists()  # logged out and cleaned up
    env["CB_TOKEN"] = token
    lines = _bash(one_liners, work, env, strict_curl=False).decode().splitlines()
    assert "hello, phone" in lines
    assert any(line.lower().startswith("x-data-type: text") for line in lines)
    assert lines[-1].startswith(f"{server.base_url}/file/get?token=")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        names = [item["filename"] for item in client.get("/file/buffer/items").json()["items"] if item.get("filename")]
    assert names[:2] == ["notes.tar.gz", "Relevé de compte.pdf"]
