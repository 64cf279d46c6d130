"""The client's own cleaning of the server's (untrusted) filename: a pure
function, so tested directly with names no honest server would send."""
from __future__ import annotations

import pytest

from cloudbuffer_client.files import filename_from_disposition, safe_filename


@pytest.mark.parametrize("hostile, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("/abs/path.txt", "path.txt"),
    ("..", "download"),
    ("...", "download"),
    ("", "download"),
    (None, "download"),
    (".bashrc", "bashrc"),
    ("\x1b[31mred\x07.txt", "[31mred.txt"),
    ("name. . .", "name"),
    ("line\nbreak.txt", "linebreak.txt"),
    ("Relevé de compte.pdf", "Relevé de compte.pdf"),
])
def test_safe_filename_keeps_a_plain_name_for_the_current_directory(hostile, expected):
    assert safe_filename(hostile) == expected


def test_safe_filename_caps_the_length_and_keeps_the_extension():
    name = safe_filename("é" * 400 + ".tar.gz")
    assert len(name.encode()) <= 200 and name.endswith(".gz")


def test_filename_from_disposition_prefers_the_utf8_name():
    header = "attachment; filename=\"Releve.pdf\"; filename*=UTF-8''Relev%C3%A9%20%2F..%2Fx.pdf"
    name = filename_from_disposition(header)
    assert name == "Relevé /../x.pdf"
    assert safe_filename(name) == "x.pdf"
