"""The Jinja filters the pages use."""
from __future__ import annotations

import pytest

from server.blueprints.pwa import duration, filesize, isotime, percent, reltime, shared_text


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"), (1536, "1.5 KB"), (10 * 1024, "10 KB"),
    (5 * 1024**3, "5.0 GB"), (None, ""),
])
def test_filesize(size, text):
    assert filesize(size) == text


@pytest.mark.parametrize(("delta", "text"), [
    (0, "just now"), (-30, "just now"), (-90, "2 min ago"), (-7200, "2 h ago"), (7200, "in 2 h"),
    (-3 * 86400, "3 d ago"), (600, "in 10 min"),
])
def test_reltime(delta, text):
    assert reltime(1_000_000 + delta, now=1_000_000) == text


def test_reltime_never():
    assert reltime(None) == "never"


def test_isotime():
    assert isotime(0) == "1970-01-01T00:00:00Z"
    assert isotime(None) == ""


def test_percent():
    assert percent(1, 3) == 33 and percent(5, 0) == 0 and percent(10, 5) == 100


@pytest.mark.parametrize(("title", "text", "url", "result"), [
    ("", "hello", "", "hello"),
    ("Page", "", "https://e.org/", "https://e.org/"),
    ("Page", "see https://e.org/", "https://e.org/", "see https://e.org/"),
    ("Page", "look", "https://e.org/", "look\nhttps://e.org/"),
    ("Only a title", "", "", "Only a title"),
    ("", "  ", "", ""),
])
def test_shared_text(title, text, url, result):
    assert shared_text(title, text, url) == result


@pytest.mark.parametrize(("seconds", "text"), [
    (7200, "2 hours"), (3600, "1 hour"), (5400, "90 minutes"), (86400, "1 day"), (45, "45 seconds"),
    (61, "1 minute"), (1, "1 second"),
])
def test_duration(seconds, text):
    assert duration(seconds) == text
