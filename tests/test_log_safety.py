"""server/log_safety.py: no share token in any spelling, and no character
that is not printable, ever reaches a log line."""
from __future__ import annotations

import logging
import re
import sys
from urllib.parse import quote, unquote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server import create_app
from server.log_safety import SECRET_ROUTES, LogSafeFormatter, escaped, log_safe_path, log_safe_text
from server.serving import RedactingLogger

# What the access log can be asked for: the path, the query and both, alone
# or in the request line (the project's hypercorn.toml asks for %(U)s).
FORMAT = '%(h)s "%(r)s" "%(R)s" %(U)s %(Uq)s %(q)s %(f)s %(a)s %({x-anything}i)s'
TOKENS = st.from_regex(r"\A[A-Za-z0-9_-]{32}\Z")  # secrets.token_urlsafe(24)


def access_line(path: str, query: str = "", headers=()) -> str:
    """The access log line the server would write (Hypercorn's access logger
    formats the format with our atoms; the scope's path is decoded)."""
    from hypercorn.config import Config

    config = Config()
    config.logger_class = RedactingLogger
    config.access_log_format = FORMAT
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode("latin-1"),
             "http_version": "1.1", "client": ("203.0.113.9", 50123), "scheme": "http",
             "headers": list(headers)}
    record = logging.LogRecord("hypercorn.access", logging.INFO, __file__, 1, config.access_log_format,
                               (config.log.atoms(scope, {"status": 404, "headers": []}, 0.1),), None)
    return record.getMessage()


def assert_plain_line(line: str) -> None:
    assert line.isprintable(), repr(line)  # no CR, LF, ESC, DEL, C1, bidi or separator characters
    assert '"' not in line.replace('"', "", 4)  # only the format's own quotes


def assert_no_token(line: str, token: str) -> None:
    assert token not in line, line
    # Not spelled with percent escapes either.
    assert token not in unquote(unquote(line)), line


# Each piece of a share path, in the spellings a lenient browser, proxy or
# person may give it. The scope's path is decoded once already, so a
# percent escape here is one that came encoded twice.
SEPARATORS = ["/", "//", "\\", "/./", "/x/../", "/.;x/", "/x/..;y/", ";x/", "/;x/", "/\n", "\n/", "/\r\x1b",
              "/\t", "/ ", "\x00/", "/%2F", "%2F", "%5C", "/%2e/", "/x/%252e%252e/", "／", "＼", "/．/"]
AFTER_ROUTE = SEPARATORS + ["?", "%3F", "%3Ftoken=", "\n", "\x00", "#", ";", "%0A", "%0D%0A", ".", ",", "=", "\x1b"]
FILE = ["file", "FILE", "File", "f%69le", "%66%69%6c%65", "ｆｉｌｅ", "ﬁle"]
ROUTE = ["get", "GET", "Get", "qr", "QR", "%67et", "%71r", "ｇｅｔ"]
PREFIXES = ["", "/", "/x/..", "/static/..", "//", "/pwa/%2e%2e", "/account/..;/", "/http://cb.example", "/%2e"]
SUFFIXES = ["", "/", "/more", ".pdf", "?x=1", "\n", "\r\n[2026-12-03 09:00:00 +0000] forged", "%0A"]


def percent_encoded_at_random(draw, text: str) -> str:
    positions = draw(st.sets(st.integers(0, len(text) - 1), max_size=4))
    return "".join(quote(ch, safe="") if i in positions and ch.isalnum() else ch for i, ch in enumerate(text))


@st.composite
def share_paths(draw):
    token = draw(TOKENS)
    spelled = percent_encoded_at_random(draw, token) if draw(st.booleans()) else token
    path = (draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(SEPARATORS)) + draw(st.sampled_from(FILE))
            + draw(st.sampled_from(SEPARATORS)) + draw(st.sampled_from(ROUTE)) + draw(st.sampled_from(AFTER_ROUTE))
            + spelled + draw(st.sampled_from(SUFFIXES)))
    return token, path


@settings(max_examples=1500, deadline=None)
@given(share_paths())
@example(("T" * 32, "/file/get;x/" + "T" * 32))
@example(("T" * 32, "/file/get\\" + "T" * 32))
@example(("T" * 32, "/file/./get/" + "T" * 32))
@example(("T" * 32, "/file/x/../get/" + "T" * 32))
@example(("T" * 32, "/file/get/\n" + "T" * 32))
def test_no_spelling_of_a_share_path_puts_its_token_in_the_access_log(case):
    token, path = case
    line = access_line(path)
    assert_no_token(line, token)
    assert_plain_line(line)


PARAMETER_NAMES = ["token", "TOKEN", "Token", "tok%65n", "%74oken", "token%00", "token[]", "x_token", "token+",
                   "%EF%BD%94oken"]


@settings(max_examples=500, deadline=None)
@given(TOKENS, st.sampled_from(PARAMETER_NAMES), st.sampled_from(["", "x=1&", "x=1;", "a&"]),
       st.sampled_from(["", "&x=1", ";y=2", "#z"]), st.booleans())
def test_no_spelling_of_a_token_parameter_puts_its_token_in_the_access_log(token, name, before, after, in_next):
    query = f"{before}{name}={token}{after}"
    if in_next:  # a share path carried in another parameter (a login's next=)
        query = f"{before}next={quote('/file/get/' + token, safe='')}{after}"
    line = access_line("/file/get", query, headers=[(b"referer", f"https://cb.example/file/get?{query}".encode())])
    assert_no_token(line, token)
    assert_plain_line(line)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=80),
       st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40),
       st.binary(max_size=40))
def test_whatever_a_client_sends_is_one_printable_access_log_line(path, query, header):
    line = access_line(path, query, headers=[(b"x-anything", header), (b"user-agent", header)])
    assert_plain_line(line)


def test_the_issues_forged_lines_are_escaped():
    forged = '/nothing\n[2026-12-03 09:00:00 +0000] 203.0.113.1:1 "POST /account/password 1.1" 200'
    line = access_line(forged)
    assert "\n" not in line and '/nothing\\x0a[2026-12-03 09:00:00 +0000] 203.0.113.1:1 \\x22POST' in line
    assert access_line("/x\r\x1b[31mred").count("/x\\x0d\\x1b[31mred") == 4


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=60))
def test_escaping_and_redacting_twice_change_nothing(value):
    once = escaped(value)
    assert once.isprintable() and '"' not in once and escaped(once) == once
    assert log_safe_text(log_safe_text(value)) == log_safe_text(value)
    assert log_safe_path(log_safe_path(value)) == log_safe_path(value)


def test_ordinary_paths_and_texts_are_left_as_they_are():
    for path in ("/file/buffer/items/42", "/pwa/icons/icon.svg", "/account/profile", "/file/get", "/file/getaway/x",
                 "/profile/get/x", "/é/ü 1", "/file/load"):
        assert log_safe_path(path) == path
    assert log_safe_text("curl/8.5 (x86_64) libcurl") == "curl/8.5 (x86_64) libcurl"
    assert log_safe_path("/file/get/T0k3n", "x=1&download=1") == "/file/get/[redacted]?x=1&download=1"


def test_every_route_with_a_token_in_its_path_is_known_to_the_redaction(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path)})
    for rule in app.url_map.iter_rules():
        if "token" in rule.arguments:
            static = [part for part in rule.rule.split("/") if part and not part.startswith("<")]
            assert tuple(static[-2:]) in SECRET_ROUTES, rule.rule


def test_the_formatter_redacts_and_escapes_message_and_traceback(caplog):
    formatter = LogSafeFormatter("%(levelname)s %(message)s")
    token = "Zq3share-token-Xy9abcdefghijklm"
    try:
        raise ValueError(f"bad path /file/get/{token}\n[forged] line\x1b[31m")
    except ValueError:
        record = logging.LogRecord("server.x", logging.ERROR, __file__, 1, "on %s: %r", (
            f"/file/qr/{token}", "\x1b]0;title\x07"), sys.exc_info())
    text = formatter.format(record)
    assert token not in text and "\x1b" not in text and "\x07" not in text
    assert "\n[forged]" not in text and text.startswith("ERROR on /file/qr/[redacted] '\\x1b]0;title\\x07'\n")
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert '  File "' in text  # the traceback reads as one
    assert re.search(r"^ValueError: bad path /file/get/\[redacted\]", text, re.MULTILINE)
    assert record.args[0].endswith(token)  # other handlers still get the record as it was
