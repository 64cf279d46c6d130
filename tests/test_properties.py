"""Property tests (hypothesis) for the two functions every filename passes
through: the sanitizer (user input → stored metadata) and the
Content-Disposition builder (stored metadata → a response header)."""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from hypothesis import example, given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from server.storage import MAX_FILENAME_CHARS, content_disposition, sanitize_filename

# Any code point at all, lone surrogates included (what a hostile multipart
# part or a mis-decoded header can hand us).
any_text = st.text(alphabet=st.characters(codec=None, categories=None), max_size=400)
# Valid Unicode names (no surrogates): what can reach the header builder.
names = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300)
nasty = ["../../etc/passwd", "..\\..\\boot.ini", "a\x00b.txt", "\u202eexe.pdf", "CON", ".bashrc", " . ",
         'quote".txt', "semi;colon.txt", "per%20cent.txt", "new\r\nline.txt", "é" * 500, "x." + "y" * 300]


# Names made mostly of what sanitizing strips or folds: dots, spaces,
# separators and their fullwidth and compatibility forms, controls,
# combining marks, with a few letters between.
tricky_text = st.text(alphabet=st.sampled_from(
    list(". /\\\x00\x1f\x7f\u200b\u202e\u3000\u00a0") + list("．／＼｡︰﹒․‥…") + ["\u0301", "\u0958", "e", "é", "x"]
), max_size=40) | st.builds(lambda pad, tail: "a" * pad + tail, st.integers(190, 210), st.text(" .b\u0301", max_size=6))


@settings(max_examples=500, deadline=None)
@given(any_text | tricky_text)
@example(". ..")
@example("a" * 199 + " b")
@example("e\x00\u0301")
@example("../../etc/passwd")
@example("a\\b\\c.txt")
@example("\x00\x1f\x7f.txt")
@example("." * 10)
def test_sanitized_names_are_plain_and_bounded(name):
    clean = sanitize_filename(name)
    assert isinstance(clean, str)
    assert len(clean) <= MAX_FILENAME_CHARS
    assert "/" not in clean and "\\" not in clean
    assert not any(unicodedata.category(ch)[0] == "C" for ch in clean), repr(clean)
    assert not set(clean) & set('<>:"|?*')
    assert not clean.startswith(".")
    assert clean == clean.strip()
    assert clean == unicodedata.normalize("NFC", clean)
    # Idempotent: a stored name passes through again unchanged.
    assert sanitize_filename(clean) == clean


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("C",)), min_size=1, max_size=60)
       .filter(lambda s: s.strip() and not s.strip().startswith(".") and not set(s) & set('<>:"|?*/\\')))
def test_ordinary_names_survive_sanitizing(name):
    name = unicodedata.normalize("NFC", name.strip())
    assert sanitize_filename(name) == name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=20),
       st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=10))
def test_long_names_keep_their_extension(stem, ext):
    stem, ext = unicodedata.normalize("NFC", stem * 50), unicodedata.normalize("NFC", ext)
    name = sanitize_filename(stem + "." + ext)
    assert len(name) <= MAX_FILENAME_CHARS
    if len(stem) + 1 + len(ext) > MAX_FILENAME_CHARS:
        assert name.endswith("." + ext) and stem.startswith(name[: -len(ext) - 1])


def header_safe(value: str) -> bool:
    return value.isascii() and not re.search(r"[\x00-\x1f\x7f]", value)


@settings(max_examples=500, deadline=None)
@given(names)
def test_content_disposition_always_encodes_and_round_trips(name):
    for disposition in ("attachment", "inline"):
        header = content_disposition(name, disposition)
        # Pure printable ASCII: valid in any HTTP/1.1 or HTTP/2 header.
        assert header_safe(header), repr(header)
        header.encode("latin-1")
        kind, options = parse_options_header(header)
        assert kind == disposition
        # The ASCII fallback for old clients is quoted-string safe.
        match = re.search(r'filename="([^"]*)"', header)
        assert match and header_safe(match.group(1))
        assert not set(match.group(1)) & set('"\\%;')
        # filename* carries the exact name, whatever script it is in.
        star = re.search(r"filename\*=UTF-8''([^;\s]*)", header).group(1)
        assert unquote(star, errors="strict") == name
        assert options["filename"] == name  # a standard parser reads filename* back


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_whatever_arrives_can_be_served_under_its_sanitized_name(name):
    clean = sanitize_filename(name) or "download"
    header = content_disposition(clean)
    assert header_safe(header)
    assert parse_options_header(header)[1]["filename"] == clean


def test_nasty_examples():
    for name in nasty:
        clean = sanitize_filename(name)
        header = content_disposition(clean or "download")
        assert header_safe(header)
        assert ".." not in clean.split("/")


def ascii_fallback(header: str) -> str:
    return re.search(r'filename="([^"]*)"', header).group(1)


@settings(max_examples=1000, deadline=None)
@given(names | tricky_text.filter(lambda name: not any(0xD800 <= ord(ch) < 0xE000 for ch in name)))
@example("．．／．．／．bashrc")
@example("日本語.txt")
@example("．")
def test_the_ascii_fallback_is_never_a_path_or_a_dotfile(name):
    """curl -OJ and old browsers write the fallback to disk as it is."""
    for candidate in (name, sanitize_filename(name) or "download"):
        fallback = ascii_fallback(content_disposition(candidate))
        assert fallback and header_safe(fallback)
        assert "/" not in fallback and "\\" not in fallback, (candidate, fallback)
        assert not fallback.startswith("."), (candidate, fallback)
        assert fallback not in (".", "..") and fallback == fallback.strip()
        assert sanitize_filename(fallback) == fallback  # already as clean as a stored name
