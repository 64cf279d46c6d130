"""`next` after logging in or signing up never leaves the site
(server/redirects.py), judged the way a browser's URL parser reads the
Location header; and through the real server, the inputs that broke it."""
from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.redirects import safe_next
from tests.conftest import PASSWORD
from tests.helpers import BROWSER_ACCEPT
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

SITE = "http://127.0.0.1:8000"
PAGE = SITE + "/account/login"
# The characters that move a URL to another host or scheme, or that the
# URL parser drops, mixed with ordinary ones.
TRICKY = "/\\\t\r\n\x00\x0b\x1f\x7f :.@%?#09aZ\u3002\uff0f\u2215\u00a0\ud800é"
tricky_text = st.text(alphabet=st.sampled_from(list(TRICKY)) | st.characters(codec=None), max_size=40)
# The issue's inputs, and the classic open-redirect spellings.
NASTY = [
    "/\t/evil.example/", "/\r/evil.example/", "/\n/evil.example/", "\r\n", "/\r\nSet-Cookie: x=1",
    "//evil.example/", "///evil.example/", "/\\evil.example", "\\/evil.example", "\\\\evil.example",
    " //evil.example", "\x00//evil.example", "\t//evil.example", "/ /evil.example", "https://evil.example/",
    "http:evil.example", "https:/evil.example", "javascript:alert(1)", " javascript:alert(1)", "JaVaScRiPt:x",
    "data:text/html,<script>alert(1)</script>", "evil.example", "@evil.example", "/%09/evil.example/",
    "/%2F%2Fevil.example", "/.//evil.example", "/\u3002/evil.example", "/\uff0f/evil.example", "\ud800",
]


def whatwg_resolve(location: str, base: str = PAGE) -> str:
    """Where a browser goes for `Location: location` on `base`: what the
    WHATWG URL parser drops is dropped (leading and trailing C0 controls
    and spaces; tab, CR and LF anywhere) and `\\` read as `/`, as it does
    for http(s); then urllib resolves the rest."""
    location = location.strip("".join(map(chr, range(0x21))))
    location = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
    return urljoin(base, location)


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def assert_on_site(location: str) -> None:
    assert re.fullmatch(r"[\x21-\x7e]+", location), repr(location)  # a legal header value, no CR/LF
    assert origin(whatwg_resolve(location)) == origin(SITE), location


@settings(max_examples=2000, deadline=None)
@given(tricky_text)
@example("/%09/evil.example/")
def test_the_redirect_never_leaves_the_site(target):
    assert_on_site(safe_next(target))


@pytest.mark.parametrize("target", NASTY)
def test_known_spellings_of_another_site_go_home_or_stay_on_site(target):
    location = safe_next(target)
    assert_on_site(location)
    if "evil" in target.lower() and not target.startswith(("/%", "/.", "/\u3002", "/\uff0f", "/ ")):
        assert location == "/", (target, location)


@pytest.mark.parametrize("target, expected", [
    ("/file/load", "/file/load"),
    ("/file/buffer/items?q=a&b=c#top", "/file/buffer/items?q=a&b=c#top"),
    ("/file/get/Xb3-_~", "/file/get/Xb3-_~"),
    ("/Relevé de compte", "/" + quote("Relevé de compte")),  # percent-encoded, as a browser sends it
    ("/a\tb", "/ab"),  # what the browser would read anyway
    (None, "/"), ("", "/"), (42, "/"), (["/x"], "/"),
])
def test_local_paths_are_kept(target, expected):
    assert safe_next(target) == expected


def test_the_issue_inputs_through_the_real_server(live_server_factory, tmp_path):  # noqa: F811
    """Login and register forms, JSON too, and the login pages' own `next`
    field: no 5xx, and every Location stays on the site."""
    server = live_server_factory(tmp_path / "data", env={"CLOUDBUFFER_RATE_LIMITS": "false"})
    base = server.base_url
    with httpx.Client(base_url=base, timeout=10, headers={"Accept": BROWSER_ACCEPT}) as http:
        for number, target in enumerate(NASTY[:6] + ["/%09/evil.example/"]):
            raw = "/\t/evil.example/" if target == "/%09/evil.example/" else target
            username = f"user{number}"
            for path, body in (("/account/register", {"username": username, "password": PASSWORD, "next": raw}),
                               ("/account/login", {"username": username, "password": PASSWORD, "next": raw})):
                response = http.post(path, data=body, follow_redirects=False)
                assert response.status_code == 303, (path, repr(raw), response.status_code, response.text[:300])
                location = response.headers["location"]
                assert origin(whatwg_resolve(location, base + path)) == origin(base), (repr(raw), location)
                assert location == ("/Set-Cookie:%20x=1" if "Set-Cookie" in raw else "/"), (repr(raw), location)
                # CR LF in `next` never starts a header of its own.
                assert all(cookie.startswith("cloudbuffer_session=")
                           for cookie in response.headers.get_list("set-cookie"))
            # The pages carry `next` into their forms: it comes back judged.
            for page in ("/account/login", "/account/register"):
                response = http.get(page, params={"next": raw})
                assert response.status_code == 200
                if "evil" in raw:
                    assert 'name="next" value="/"' in response.text, (page, repr(raw))
        # The API answers JSON, whatever `next` holds.
        response = http.post("/account/login", json={"username": "user0", "password": PASSWORD,
                                                    "next": "/\r\n/evil.example/"})
        assert response.status_code == 200 and response.json()["username"] == "user0"
