"""Where a browser may be sent after logging in or signing up (`next`).

`next` comes from the client, so it must never take the browser to another
site. It is judged the way the browser will read it: the WHATWG URL parser
first strips leading and trailing C0 controls and spaces, then removes every
tab, CR and LF, and in http(s) URLs reads `\\` as `/`. So `/\\t/evil.example/`
and `/\\evil.example` are both `//evil.example/`, another host. What is left
must be a path on this site: one `/` followed by anything but another `/`.
"""
from __future__ import annotations

from urllib.parse import quote

HOME = "/"
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_TAB_AND_NEWLINES = str.maketrans("", "", "\t\n\r")
# Printable ASCII other than what quote() keeps anyway, minus the characters
# a URL cannot carry raw (space, quotes, angle brackets, backslash, …): those
# and anything beyond ASCII are percent-encoded, as the browser would.
_KEPT = "/?#[]@!$&'()*+,;=:%~"


def safe_next(target: object) -> str:
    """`target` as a local path to redirect to, or `/` for anything off-site
    or odd (not a string, control characters left after what the parser
    removes)."""
    if not isinstance(target, str):
        return HOME
    url = target.strip(_C0_AND_SPACE).translate(_TAB_AND_NEWLINES).replace("\\", "/")
    if not url.startswith("/") or url.startswith("//"):
        return HOME
    if any(char < " " or char == "\x7f" for char in url):
        return HOME
    try:
        return quote(url, safe=_KEPT)
    except UnicodeEncodeError:  # a lone surrogate (JSON can carry one): no URL
        return HOME
