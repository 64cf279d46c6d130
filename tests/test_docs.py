"""Conventions the docs must keep (Datasette-style): every setting documented."""
from __future__ import annotations

import re
from pathlib import Path

from server.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `CLOUDBUFFER_([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert {setting.name for setting in SETTINGS} <= rows


def test_every_environment_variable_the_code_reads_is_documented():
    readme = (ROOT / "README.md").read_text()
    used = set()
    for path in (ROOT / "server").rglob("*.py"):
        used.update(re.findall(r"CLOUDBUFFER_([A-Z_]+)", path.read_text()))
    used |= {setting.name for setting in SETTINGS}
    used.discard("")
    missing = sorted(name for name in used if f"`CLOUDBUFFER_{name}`" not in readme)
    assert missing == []


def test_every_setting_has_help_text():
    for setting in SETTINGS:
        assert len(setting.help) > 20, setting.name
