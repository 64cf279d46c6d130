"""Accounts: register, log in and out, sessions (devices), API tokens, CSRF."""
from __future__ import annotations

import html
import time

import pytest

from tests.conftest import PASSWORD, make_token, register
from tests.helpers import BROWSER_ACCEPT, COOKIE_NAME, cookie_value, database_content, session_key_of_cookie
from server.services import services

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
CHROME_ANDROID = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Mobile Safari/537.36"


async def error_of(response, status: int, code: str) -> str:
    """Assert the API error shape; return its message."""
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    return body["message"]


async def login(client, username="alice", password=PASSWORD, **kwargs):
    return await client.post("/account/login", json={"username": username, "password": password}, **kwargs)


# --- register --------------------------------------------------------------------------------


async def test_register_json_creates_account_and_logs_in(client):
    response = await client.post("/account/register", json={"username": "alice", "password": PASSWORD},
                                  headers={"User-Agent": FIREFOX_LINUX})
    assert response.status_code == 201
    body = await response.get_json()
    assert body["username"] == "alice"
    assert body["device"]["name"] == "Firefox on Linux"
    profile = await client.get("/account/profile", headers={"Accept": "application/json"})
    assert profile.status_code == 200
    assert (await profile.get_json())["username"] == "alice"


async def test_register_answers_at_the_original_spelling(client):
    response = await client.post("/account/registet", json={"username": "bob", "password": PASSWORD})
    assert response.status_code == 201
    page = await client.get("/account/registet", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.mimetype == "text/html"


async def test_register_duplicate_is_409_case_insensitively(client):
    await register(client, "alice")
    other = client.app.test_client()
    response = await other.post("/account/register", json={"username": "ALICE", "password": PASSWORD})
    message = await error_of(response, 409, "username_taken")
    assert "taken" in message
    assert cookie_value(other) is None  # no session was started


@pytest.mark.parametrize(
    "body, code",
    [
        ({"username": "alice"}, "invalid_input"),  # no password
        ({"password": PASSWORD}, "invalid_input"),  # no username
        ({"username": "alice", "password": "short"}, "invalid_password"),
        ({"username": "al", "password": PASSWORD}, "invalid_username"),
        ({"username": "has space", "password": PASSWORD}, "invalid_username"),
        ({"username": "-dash-first", "password": PASSWORD}, "invalid_username"),
        ({"username": "x" * 33, "password": PASSWORD}, "invalid_username"),
        ({"username": 42, "password": PASSWORD}, "invalid_input"),
        ({"username": "alice", "password": ["a list"]}, "invalid_input"),
    ],
)
async def test_register_malformed_input_is_400(client, body, code):
    response = await client.post("/account/register", json=body)
    await error_of(response, 400, code)


async def test_register_rejects_bodies_that_are_not_json_objects(client):
    response = await client.post("/account/register", data=b"[1, 2]", headers={"Content-Type": "application/json"})
    await error_of(response, 400, "invalid_json")
    response = await client.post("/account/register", data=b"{nope", headers={"Content-Type": "application/json"})
    await error_of(response, 400, "invalid_json")
    response = await client.post("/account/register", data=b"x", headers={"Content-Type": "text/csv",
                                                                          "Accept": "application/json"})
    await error_of(response, 415, "unsupported_media_type")


async def test_register_refuses_huge_bodies(client):
    response = await client.post("/account/register", json={"username": "alice", "password": "p" * 100_000})
    await error_of(response, 413, "too_large")


async def test_register_form_redirects_a_browser(client):
    response = await client.post(
        "/account/register", form={"username": "alice", "password": PASSWORD, "next": "/file/load"},
        headers={"Accept": BROWSER_ACCEPT},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/file/load"
    assert cookie_value(client) is not None


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"])
async def test_login_redirect_is_never_off_site(client, target):
    await register(client.app.test_client(), "alice")
    response = await client.post("/account/login", form={"username": "alice", "password": PASSWORD, "next": target},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


async def test_register_error_is_shown_on_the_form(client):
    await register(client.app.test_client(), "alice")
    response = await client.post("/account/register", form={"username": "alice", "password": PASSWORD},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    assert "is taken; choose another." in html.unescape(page)
    # The form keeps what was typed (the username, never the password).
    assert 'value="alice"' in page
    assert PASSWORD not in page


async def test_register_and_login_pages_render(client):
    for path in ("/account/register", "/account/login"):
        response = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert "<form" in await response.get_data(as_text=True)


# --- login ---------------------------------------------------------------------------------------


async def test_login_json_with_any_case_of_the_username(client):
    await register(client.app.test_client(), "Alice")
    response = await login(client, "aLiCe", headers={"User-Agent": CHROME_ANDROID})
    assert response.status_code == 200
    body = await response.get_json()
    assert body["username"] == "Alice"  # stored as registered
    assert body["device"]["name"] == "Chrome on Android"
    assert (await client.get("/file/buffer")).status_code == 204


async def test_login_takes_the_name_the_person_gives_the_device(client):
    await register(client.app.test_client(), "alice")
    response = await client.post("/account/login", headers={"User-Agent": CHROME_ANDROID}, json={
        "username": "alice", "password": PASSWORD, "device_name": "  Sam's phone\x07 "})
    assert (await response.get_json())["device"]["name"] == "Sam's phone"
    blank = await client.app.test_client().post("/account/login", headers={"User-Agent": CHROME_ANDROID}, json={
        "username": "alice", "password": PASSWORD, "device_name": " "})
    assert (await blank.get_json())["device"]["name"] == "Chrome on Android"


async def test_login_bad_credentials_are_401_with_one_message(client):
    await register(client.app.test_client(), "alice")
    wrong_password = await error_of(await login(client, "alice", "not the password"), 401, "invalid_credentials")
    unknown_user = await error_of(await login(client, "nobody", PASSWORD), 401, "invalid_credentials")
    assert wrong_password == unknown_user  # the answer does not reveal which usernames exist
    assert cookie_value(client) is None


async def test_login_error_is_shown_on_the_form(client):
    await register(client.app.test_client(), "alice")
    response = await client.post("/account/login", form={"username": "alice", "password": "nope nope"},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 401
    assert response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    assert "That username and password do not match an account." in page
    assert "nope nope" not in page


async def test_login_malformed_is_400(client):
    await error_of(await client.post("/account/login", json={"username": "alice"}), 400, "invalid_input")
    await error_of(await client.post("/account/login", json={"username": ["x"], "password": "y"}), 400, "invalid_input")
    response = await client.post("/account/login", form={"username": "alice"}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "&#39;password&#39; is required." in await response.get_data(as_text=True)


async def test_login_form_redirects_a_browser(client):
    await register(client.app.test_client(), "alice")
    response = await client.post("/account/login", form={"username": "alice", "password": PASSWORD},
                                 headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert (await client.get("/file/buffer")).status_code == 204


async def test_unknown_username_costs_as_much_as_a_wrong_password(slow_password_hasher, client):
    await register(client.app.test_client(), "alice")

    async def timed(username: str) -> float:
        start = time.perf_counter()
        response = await login(client, username, "wrong password")
        assert response.status_code == 401
        return time.perf_counter() - start

    wrong = sum([await timed("alice") for _ in range(2)])
    unknown = sum([await timed("nobody") for _ in range(2)])
    # An argon2 verification runs in both cases; a shortcut for unknown
    # usernames would answer about a hundred times faster.
    assert unknown > wrong * 0.4, (unknown, wrong)


# --- sessions --------------------------------------------------------------------------------------


async def test_session_cookie_flags(client):
    response = await client.post("/account/register", json={"username": "alice", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE_NAME + "=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on localhost must work


@pytest.fixture
def https_settings(settings):
    settings["PUBLIC_URL"] = "https://buffer.example.com"
    return settings


async def test_session_cookie_is_secure_behind_https(https_settings, client):
    response = await client.post("/account/register", json={"username": "alice", "password": PASSWORD},
                                 scheme="https")
    assert "Secure" in response.headers["Set-Cookie"]


async def test_logout_revokes_the_session_and_a_replayed_cookie_gets_401(alice):
    stolen = cookie_value(alice)
    response = await alice.post("/account/logout", json={})
    assert response.status_code == 200
    assert (await response.get_json()) == {"ok": True}
    # The client forgot its cookie …
    await error_of(await alice.get("/file/buffer"), 401, "unauthorized")
    # … and a copy of it is worthless now.
    replay = alice.app.test_client()
    response = await replay.get("/file/buffer", headers={"Cookie": f"{COOKIE_NAME}={stolen}"})
    await error_of(response, 401, "unauthorized")


async def test_logout_in_a_browser_goes_to_the_login_page(alice):
    response = await alice.post("/account/logout", form={}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login"


async def test_logout_without_a_session_is_harmless(client):
    response = await client.post("/account/logout", json={})
    assert response.status_code == 200


async def test_devices_are_listed_renamed_and_revoked(app):
    laptop, phone = app.test_client(), app.test_client()
    await register(laptop, "alice")
    assert (await login(phone, "alice", headers={"User-Agent": CHROME_ANDROID})).status_code == 200

    profile = await (await laptop.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert len(profile["devices"]) == 2
    current = [d for d in profile["devices"] if d["current"]]
    phone_device = next(d for d in profile["devices"] if d["name"] == "Chrome on Android")
    assert len(current) == 1 and current[0]["id"] != phone_device["id"]

    renamed = await laptop.patch(f"/account/sessions/{phone_device['id']}", json={"name": "My phone"})
    assert (await renamed.get_json()) == {"id": phone_device["id"], "name": "My phone"}
    await error_of(await laptop.patch(f"/account/sessions/{phone_device['id']}", json={"name": "\x00 "}),
                   400, "invalid_device_name")

    phone_cookie = cookie_value(phone)
    response = await laptop.delete(f"/account/sessions/{phone_device['id']}")
    assert response.status_code == 200
    await error_of(await phone.get("/file/buffer"), 401, "unauthorized")
    replay = app.test_client()
    await error_of(await replay.get("/file/buffer", headers={"Cookie": f"{COOKIE_NAME}={phone_cookie}"}),
                   401, "unauthorized")
    assert (await laptop.get("/file/buffer")).status_code == 204  # the laptop is still logged in
    await error_of(await laptop.delete(f"/account/sessions/{phone_device['id']}"), 404, "not_found")


async def test_revoke_by_form_post_redirects_to_the_profile(app):
    laptop, phone = app.test_client(), app.test_client()
    await register(laptop, "alice")
    await login(phone, "alice")
    profile = await (await phone.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    phone_id = next(d["id"] for d in profile["devices"] if d["current"])
    response = await laptop.post(f"/account/sessions/{phone_id}/delete", form={}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303 and response.headers["Location"] == "/account/profile?done=device-revoked"
    assert (await phone.get("/file/buffer")).status_code == 401


async def test_a_user_cannot_touch_another_users_devices(app):
    alice, mallory = app.test_client(), app.test_client()
    await register(alice, "alice")
    await register(mallory, "mallory")
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    alice_id = profile["devices"][0]["id"]
    await error_of(await mallory.delete(f"/account/sessions/{alice_id}"), 404, "not_found")
    await error_of(await mallory.patch(f"/account/sessions/{alice_id}", json={"name": "pwned"}), 404, "not_found")
    assert (await alice.get("/file/buffer")).status_code == 204


async def test_password_is_stored_with_argon2id(app, alice):
    password_hash = await services(app).db.read(lambda conn: conn.value("SELECT password_hash FROM users"))
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash


# --- API tokens ------------------------------------------------------------------------------------


async def test_api_token_is_shown_once_authenticates_and_revokes(app, alice):
    response = await alice.post("/account/tokens", json={"name": "backup script", "password": PASSWORD})
    assert response.status_code == 201
    created = await response.get_json()
    token = created["token"]
    assert created["name"] == "backup script"
    assert len(token) >= 40

    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert profile["tokens"] == [
        {"id": created["id"], "name": "backup script", "created_at": created["created_at"], "last_used_at": None}
    ]
    assert token not in str(profile)

    script = app.test_client()  # no cookies: only the token
    bearer = {"Authorization": f"Bearer {token}"}
    response = await script.post("/file/buffer", data=b"from a script", headers={**bearer, "X-Data-Type": "text"})
    assert response.status_code == 201
    assert (await response.get_json())["from"] == "backup script"
    response = await script.get("/file/buffer", headers=bearer)
    assert await response.get_data() == b"from a script"
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert profile["tokens"][0]["last_used_at"] is not None

    assert (await alice.delete(f"/account/tokens/{created['id']}")).status_code == 200
    response = await script.get("/file/buffer", headers=bearer)
    await error_of(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await error_of(await alice.delete(f"/account/tokens/{created['id']}"), 404, "not_found")


async def test_a_stolen_session_cannot_mint_a_token(app, alice):
    """Creating a token asks for the password again: a wrong or missing one
    is refused and nothing is created, as JSON, as a form, or with a token."""
    response = await alice.post("/account/tokens", json={"name": "thief", "password": "not the password"})
    assert "needs it" in await error_of(response, 403, "wrong_password")
    await error_of(await alice.post("/account/tokens", json={"name": "thief"}), 400, "invalid_input")
    response = await alice.post("/account/tokens", form={"name": "thief", "password": "wrong"},
                                headers={"Accept": BROWSER_ACCEPT})
    page = html.unescape(await response.get_data(as_text=True))
    assert response.status_code == 403 and "That is not your password; a new API token needs it." in page
    assert 'name="password"' in page and "cb_" not in page
    token = await make_token(alice)
    script = app.test_client()
    response = await script.post("/account/tokens", json={"name": "thief", "password": "wrong"},
                                 headers={"Authorization": f"Bearer {token}"})
    await error_of(response, 403, "wrong_password")
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert [t["name"] for t in profile["tokens"]] == ["script"]


async def test_token_password_guesses_are_rate_limited_like_password_changes(alice):
    statuses = []
    for _ in range(12):
        response = await alice.post("/account/tokens", json={"name": "x", "password": "a guess"})
        statuses.append(response.status_code)
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429, 429]
    assert "Retry-After" in response.headers


async def test_a_bogus_bearer_token_is_401_even_with_a_valid_cookie(alice):
    response = await alice.get("/file/buffer", headers={"Authorization": "Bearer cb_not-a-real-token"})
    await error_of(response, 401, "invalid_token")


async def test_token_created_from_the_profile_page_is_shown_once(alice):
    response = await alice.post("/account/tokens", form={"name": "laptop sync", "password": PASSWORD}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303  # redirect-after-POST: a reload repeats the GET
    assert response.headers["Location"] == "/account/profile#new-token-title"
    page = await (await alice.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})).get_data(as_text=True)
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    token_id = profile["tokens"][0]["id"]
    # The page shows the token; the next visit of the profile does not.
    shown = [word for word in page.replace('"', " ").replace("<", " ").replace(">", " ").split() if word.startswith("cb_")]
    assert len(shown) >= 1
    later = await (await alice.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})).get_data(as_text=True)
    assert shown[0] not in later
    assert "laptop sync" in later
    response = await alice.post(f"/account/tokens/{token_id}/delete", form={}, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303


async def test_the_database_holds_no_plaintext_secrets(app, settings, alice):
    token = await make_token(alice)
    session_key = session_key_of_cookie(cookie_value(alice))
    response = await alice.post("/file/load", data=b"--b\r\nContent-Disposition: form-data; name=\"file\"; "
                                b"filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n",
                                headers={"Content-Type": "multipart/form-data; boundary=b"})
    share_token = (await response.get_json())["token"]
    raw = await database_content(app, settings)
    assert raw, "the database files were not found"
    for secret in (token, session_key, share_token):
        assert len(secret) >= 22
        assert secret.encode() not in raw
    assert PASSWORD.encode() not in raw


# --- profile ---------------------------------------------------------------------------------------


async def test_profile_json_shows_devices_tokens_storage_and_shares(alice):
    await make_token(alice, "cron")
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\r\n12345\r\n--b--\r\n"
    await alice.post("/file/load", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert profile["username"] == "alice"
    assert profile["device"]["kind"] == "session"
    assert [t["name"] for t in profile["tokens"]] == ["cron"]
    assert profile["used_bytes"] == 5
    assert profile["quota_bytes"] == 5 * 1024**3
    assert [(s["filename"], s["size"]) for s in profile["shares"]] == [("notes.txt", 5)]


async def test_profile_page_renders_for_a_browser(alice):
    await make_token(alice, "cron job")
    response = await alice.get("/account/profile", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    assert "alice" in page and "cron job" in page


async def test_deleting_a_share_link_from_the_profile(alice):
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\nxyz\r\n--b--\r\n"
    share = await (await alice.post("/file/load", data=body,
                                    headers={"Content-Type": "multipart/form-data; boundary=b"})).get_json()
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    share_id = profile["shares"][0]["id"]
    assert (await alice.delete(f"/account/shares/{share_id}")).status_code == 200
    await error_of(await alice.get(f"/file/get?token={share['token']}"), 404, "not_found")
    await error_of(await alice.delete(f"/account/shares/{share_id}"), 404, "not_found")
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert profile["shares"] == [] and profile["used_bytes"] == 0


# --- cross-origin requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin too
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost:8001"},  # another port is another origin
        {"Origin": "http://l\u00f6calhost"},  # non-ASCII: a 403, not a crash in the comparison
    ],
)
async def test_cross_origin_cookie_writes_are_refused(alice, headers):
    response = await alice.post("/file/buffer", data=b"csrf", headers={"X-Data-Type": "text", **headers})
    await error_of(response, 403, "cross_origin")
    response = await alice.post("/account/logout", form={}, headers=headers)
    assert response.status_code == 403
    assert (await alice.get("/file/buffer")).status_code == 204  # nothing was written, still logged in


async def test_same_origin_and_header_less_writes_are_allowed(alice):
    for headers in ({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        response = await alice.post("/file/buffer", data=b"ok", headers={"X-Data-Type": "text", **headers})
        assert response.status_code == 201


async def test_bearer_requests_are_exempt_from_the_origin_check(app, alice):
    token = await make_token(alice)
    script = app.test_client()
    response = await script.post(
        "/file/buffer", data=b"from anywhere",
        headers={"Authorization": f"Bearer {token}", "X-Data-Type": "text",
                 "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 201


@pytest.fixture
def trusted_origin_settings(settings):
    settings["ALLOWED_ORIGINS"] = ("https://app.example",)
    return settings


async def test_allowed_origins_may_write_with_cookies(trusted_origin_settings, alice):
    response = await alice.post("/file/buffer", data=b"ok",
                                headers={"X-Data-Type": "text", "Origin": "https://app.example",
                                         "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 201


async def test_cross_origin_login_is_refused(client):
    await register(client.app.test_client(), "alice")
    response = await login(client, headers={"Origin": "https://evil.example"})
    await error_of(response, 403, "cross_origin")
    assert cookie_value(client) is None


async def test_logged_out_browser_is_sent_to_login_and_back(client):
    response = await client.get("/file/load?x=1", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login?next=/file/load%3Fx%3D1"
    api = await client.get("/file/load", headers={"Accept": "application/json"})
    assert api.status_code == 401 and (await api.get_json())["error"] == "unauthorized"


# --- one validation, for JSON and forms ----------------------------------------------------

@pytest.mark.parametrize("username", ["al", "-alice", "alice!", "a" * 33, "ali ce"])
async def test_a_bad_username_gets_the_same_sentence_as_json_and_on_the_form(client, username):
    body = {"username": username, "password": PASSWORD}
    message = await error_of(await client.post("/account/register", json=body), 400, "invalid_username")
    page = await client.post("/account/register", form=body, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert html.escape(message) in await page.get_data(as_text=True)


async def test_a_form_trims_the_username_an_api_call_is_taken_as_sent(client):
    """A browser's autofill may add a space; the API description's pattern
    has none, and a script's value is not guessed at."""
    for sent in (" alice", "alice\n"):  # `$` alone would let the newline through
        await error_of(await client.post("/account/register", json={"username": sent, "password": PASSWORD}),
                       400, "invalid_username")
    page = await client.post("/account/register", form={"username": " alice ", "password": PASSWORD},
                             headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 303
    assert (await (await login(client.app.test_client(), "alice")).get_json())["username"] == "alice"


async def test_a_device_name_is_cleaned_by_the_one_rule(alice):
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    device_id = profile["device"]["id"]
    renamed = await alice.patch(f"/account/sessions/{device_id}", json={"name": "  my\x07 laptop "})
    assert (await renamed.get_json())["name"] == "my laptop"
    await error_of(await alice.patch(f"/account/sessions/{device_id}", json={"name": " \x01 "}),
                   400, "invalid_device_name")
    page = await alice.post(f"/account/sessions/{device_id}/rename", form={"name": "  desk\x07 "},
                            headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 303
    profile = await (await alice.get("/account/profile", headers={"Accept": "application/json"})).get_json()
    assert [d["name"] for d in profile["devices"]] == ["desk"]


async def test_the_wrong_password_on_the_token_form_is_shown_in_the_profile(alice):
    page = await alice.post("/account/tokens", form={"name": "x", "password": "wrong one"},
                            headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 403 and page.mimetype == "text/html"
    assert 'id="token-error"' in await page.get_data(as_text=True)
