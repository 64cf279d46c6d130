"""What may be written to a log: secrets redacted, client input escaped.

Every log line that can carry a request's path, query, headers or cookies
goes through here: the access log (server/serving.py RedactedAtoms), the
error log of an unhandled error (server/errors.py, the app's log_exception),
the response-schema check (server/api_schema.py), and, as a backstop, every
record of the server's own loggers and of Hypercorn's error log
(LogSafeFormatter).

Share tokens travel in paths (/file/get/<token>, /file/qr/<token>) and in
`token=` parameters. A token in an odd spelling is still a token: someone
who pasted a link badly, or a browser or proxy that reads `\\` as `/`,
drops `;params` or resolves `..`, may send `/file/get;x/T`,
`/file/get%5CT`, `/file/x/../get/T` or `/file/get/%0AT`. So a path is
judged as the most lenient reader would see it -- percent-decoded (again,
for a double-encoding proxy), NFKC-folded, `\\` as `/`, `;params` dropped,
dot segments resolved, case ignored -- and if that reading names a share
route with anything after it, everything from there on is redacted.

Escaping: every character that is not printable (CR, LF, ESC, DEL, C1,
bidi controls, line separators, lone surrogates) becomes `\\xNN`,
`\\uNNNN` or `\\UNNNNNNNN`, so a value can neither start a line of its own
nor reach a terminal as a control sequence; in the access log `"` too, so
it cannot close the quoted request. `\\` itself is left as it is, so
escaping twice changes nothing (a call site and the formatter may both
escape).
"""
from __future__ import annotations

import logging
import re
import traceback
import unicodedata
from urllib.parse import unquote, unquote_plus

REDACTED = "[redacted]"
# Routes whose next path segment is a share token (tests/test_log_safety.py
# checks the URL map against this list).
SECRET_ROUTES = (("file", "get"), ("file", "qr"))
SECRET_PARAMETER = "token"  # a query parameter whose (lenient) name contains this carries a token

_WORDS = re.compile(r"[a-z0-9_-]+")
_ROUTE_WORDS = {second for _, second in SECRET_ROUTES}
_CUT_AFTER = re.compile("|".join(sorted({re.escape(w) for w in _ROUTE_WORDS}, key=len, reverse=True)),
                        re.IGNORECASE)
_URL_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_CHAINING = {"The above exception was the direct cause of the following exception:",
             "During handling of the above exception, another exception occurred:"}
_QUERY_SEPARATORS = re.compile(r"[&;]")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*")
_PRINTABLE_ASCII = re.compile(r'[ !#-~]*')  # printable ASCII but `"`


def escaped(value: str, quotes: bool = True) -> str:
    """`value` with every non-printable character escaped, and `"` unless
    `quotes` is false (only the access log quotes fields)."""
    if _PRINTABLE_ASCII.fullmatch(value) or (value.isprintable() and (not quotes or '"' not in value)):
        return value
    return "".join(ch if ch.isprintable() and not (quotes and ch == '"') else _escape(ch) for ch in value)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _decodings(path: str) -> list[str]:
    """`path` as it is and decoded once, twice and three times more: a proxy
    in front may decode `%252e` to `%2e` and the next reader to `.`, and
    each reading resolves `..` differently."""
    readings = [path]
    for _ in range(3):
        decoded = unquote(readings[-1])
        if decoded == readings[-1]:
            break
        readings.append(decoded)
    return readings


def _lenient_segments(path: str) -> list[tuple[list[str], bool]]:
    """`path` read leniently: per segment, the words of its name (runs of a
    token's alphabet) and whether `;params` with a word in them follow the
    name."""
    if not path.isascii():
        path = unicodedata.normalize("NFKC", path)  # ／ is /, ． is ., ﬁ is fi
    segments: list[tuple[list[str], bool]] = []
    for segment in path.replace("\\", "/").split("/"):
        name, _, params = segment.partition(";")
        if "." in name:
            bare = "".join(ch for ch in name if ch.isprintable() and not ch.isspace())
            if bare == ".":
                continue
            if bare == "..":  # ..;x too, as Tomcat reads it
                if segments:
                    segments.pop()
                continue
        segments.append((_WORDS.findall(name.casefold()), _WORDS.search(params.casefold()) is not None))
    return segments


def _ends_with_a_route(path: str) -> bool:
    """Whether some reading of `path` ends exactly with a share route's name."""
    for reading in _decodings(path):
        words = [word for names, _ in _lenient_segments(reading) for word in names]
        if tuple(words[-2:]) in SECRET_ROUTES:
            return True
    return False


def _names_a_secret(path: str) -> bool:
    """Whether some lenient reading of `path` names a share route with
    something after it (the next segment, or the route's own ;params)."""
    if _PLAIN_PATH.fullmatch(path) and not any(first in path.lower() for first, _ in SECRET_ROUTES):
        return False  # the access log's usual case, answered cheaply: nothing to decode or fold
    return any(_reading_names_a_secret(_lenient_segments(reading)) for reading in _decodings(path))


def _reading_names_a_secret(segments: list[tuple[list[str], bool]]) -> bool:
    words = [(word, index) for index, (names, _) in enumerate(segments) for word in names]
    for i in range(len(words) - 1):
        if (words[i][0], words[i + 1][0]) in SECRET_ROUTES:
            if i + 2 < len(words) or any(params for _, params in segments[words[i + 1][1]:]):
                return True
    return False


def redacted_path(path: str) -> str:
    """`path` (decoded, as routing sees it) with a share token cut off, in
    any spelling: everything after the share route's name is `[redacted]`.
    Not escaped (log_safe_path is)."""
    if not _names_a_secret(path):
        return path
    # Keep what comes before the token: up to the first place where the
    # route's name ends (…/get, …/qr) as the lenient reading sees it. A
    # token is all word characters, so a cut inside one never ends there.
    # Spelled so that the name cannot be found as it is (percent-encoded, a
    # compatibility character), nothing is kept.
    for match in _CUT_AFTER.finditer(path):
        if _ends_with_a_route(path[:match.end()]):
            return f"{path[:match.end()]}/{REDACTED}"
    return f"/{REDACTED}"


def redacted_query(query: str) -> str:
    """A query string with the value of every token parameter redacted (its
    name percent-encoded or not, `&` or `;` between pairs), and of any
    parameter whose value is a share path."""
    if not query:
        return query
    pieces = []
    position = 0
    for separator in _QUERY_SEPARATORS.finditer(query + "&"):
        pair = query[position:separator.start()]
        pieces.append(_redacted_pair(pair))
        pieces.append(separator.group(0) if separator.start() < len(query) else "")
        position = separator.end()
    return "".join(pieces)


def _redacted_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    lenient = "".join(ch for ch in unicodedata.normalize("NFKC", unquote_plus(name))
                      if ch.isprintable()).casefold()
    if equals and (SECRET_PARAMETER in lenient or _names_a_secret(unquote_plus(value))):
        return f"{name}={REDACTED}"
    if not equals and _names_a_secret(unquote_plus(name)):
        return REDACTED
    return pair


def log_safe_path(path: str, query: str = "") -> str:
    """A request's path (and query) as a log may show it."""
    if query:
        return escaped(f"{redacted_path(path)}?{redacted_query(query)}")
    return escaped(redacted_path(path))


def request_for_log(request) -> str:
    """`METHOD path` of a Quart request (or websocket) as a log may show it."""
    method = getattr(request, "method", "GET")
    return f"{escaped(method)} {log_safe_path(request.path, request.query_string.decode('latin-1'))}"


def log_safe_text(text: str, quotes: bool = True) -> str:
    """Free text (a header value, a message) as a log may show it: each
    URL or path in it has its userinfo, token parameters and share tokens
    redacted; then everything is escaped."""
    if "/" in text or "\\" in text or "=" in text or "%" in text:
        text = re.sub(r"\S+", _redacted_word, text)
    return escaped(text, quotes)


def _redacted_word(match: re.Match) -> str:
    word = match.group(0)
    if "@" in word:
        word = _URL_USERINFO.sub(rf"\1{REDACTED}@", word)
    path, question, query = word.partition("?")
    safe = redacted_path(path)
    if safe == path and "=" in path and not question:  # name=value text, no URL
        safe = redacted_query(path)
    return safe + (question + redacted_query(query) if question else "")


class LogSafeFormatter(logging.Formatter):
    """A formatter for every handler of the server's logs: the message and
    each line of a traceback go through log_safe_text, whatever the call
    site passed. Call sites that log a request use request_for_log (which
    also catches spellings this text-level pass cannot: a token after a
    newline)."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)  # other handlers keep the record as it was
        safe.msg, safe.args = log_safe_text(record.getMessage(), quotes=False), None
        safe.exc_text = None
        return super().format(safe)

    def formatException(self, ei) -> str:
        # A traceback's frames and the lines between chained exceptions keep
        # their line breaks; an exception's own message (which may quote
        # client input) is one line, escaped like any other value.
        lines = []
        for chunk in traceback.format_exception(*ei):
            if chunk.startswith(("Traceback (most recent call last):", "  ")) or chunk.strip() in _CHAINING:
                lines.extend(log_safe_text(line, quotes=False) for line in chunk.rstrip("\n").split("\n"))
            else:
                lines.append(log_safe_text(chunk.rstrip("\n"), quotes=False))
        return "\n".join(lines)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(log_safe_text(line, quotes=False) for line in super().formatStack(stack_info).splitlines())
