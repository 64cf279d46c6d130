"""Rate limits: every route has one or is exempt on purpose; logins, sign-ups,
share links and uploads are counted by the right key; 429 in our error
shape with Retry-After; proxies and forged X-Forwarded-For; counts shared
through Redis, and Redis going away does not take logins down."""
from __future__ import annotations

import asyncio
import json

import pytest
from quart import Quart
from quart_rate_limiter import QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE

from server import create_app, ratelimits
from tests.conftest import PASSWORD, make_token, register
from tests.helpers import BROWSER_ACCEPT, multipart

# Routes without a limit, and why. A new route must take a limit or be added
# here with its reason. (/ws is no route: the live socket is served beside
# Quart, and each of its messages passes the connection's token bucket.)
EXEMPT = {
    "static": "the app's CSS and images: cheap, cached, the same for everyone",
    "pwa.get_manifest": "app shell file: cheap, cached",
    "pwa.get_service_worker": "app shell file: cheap, browsers fetch it on every navigation",
    "pwa.get_module": "app shell file: cheap, cached",
    "pwa.get_pwa_file": "app shell file: cheap, cached",
    "pwa.get_favicon": "app shell file: cheap, cached",
    "system.get_health": "load balancers poll it; one cheap query",
    "live_socket": "Quart's /ws route only answers handshakes the live socket already refused",
}


# Every way of writing the buffer spends the one write budget (and no
# per-route limit besides). The live socket's `set` spends it too.
# A resumable upload spends one write at its creation; its pieces have their own limit (UPLOAD_CHUNKS).
WRITES = {"buffer.post_buffer", "files.post_load", "pwa.post_share_target", "buffer.post_item_share",
          "uploads.post_upload"}


def limits_of(app: Quart, endpoint: str) -> list:
    return getattr(app.view_functions[endpoint], QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, [])


def spends_writes(app: Quart, endpoint: str) -> bool:
    return getattr(app.view_functions[endpoint], ratelimits.WRITE_BUDGET_ATTRIBUTE, False)


def test_every_route_has_a_limit_or_is_exempt_on_purpose(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path)})
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert {e for e in endpoints if spends_writes(app, e)} == WRITES
    unlimited = {e for e in endpoints if not limits_of(app, e) and not spends_writes(app, e)}
    assert unlimited == set(EXEMPT), "give these routes a limit (server/ratelimits.py) or list them in EXEMPT"
    for endpoint in EXEMPT:
        view = app.view_functions[endpoint]
        assert endpoint == "static" or getattr(view, QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, False), \
            f"{endpoint} should say @rate_exempt in its module"
    # The promises of issue 6, by key: who is counted where.
    assert limits_of(app, "account.post_login") == ratelimits.LOGIN
    assert limits_of(app, "account.post_register") == ratelimits.REGISTER
    for endpoint in ("files.get_file", "files.get_file_by_path", "files.get_qr"):
        assert limits_of(app, endpoint) == ratelimits.SHARE_LOOKUP
    for endpoint in ("files.post_file", "files.post_file_by_path"):
        assert limits_of(app, endpoint) == ratelimits.SHARE_PASSWORD
    for endpoint in WRITES:
        assert limits_of(app, endpoint) == []
    keys = {limit.key_function for limit in ratelimits.LOGIN + ratelimits.REGISTER}
    assert keys == {ratelimits.ip_key, ratelimits.username_key}
    assert ratelimits.WRITES.key_function is ratelimits.user_key
    for endpoint in ("uploads.patch_upload", "uploads.get_upload"):
        assert limits_of(app, endpoint) == ratelimits.UPLOAD_CHUNKS


def from_address(address: str, **headers) -> dict:
    return {"scope_base": {"client": (address, 40000)}, "headers": headers}


async def login(client, username: str, password: str = PASSWORD, *, address: str = "192.0.2.1", **headers):
    return await client.post("/account/login", json={"username": username, "password": password},
                             **from_address(address, **headers))


async def first_refusal(send, count: int, most: int | None = None):
    """Send until refused; the first `count` must pass. GCRA refills as time
    goes (one request per period/count), so on a slow machine the refusal
    may come a little after `count`: up to twice the count is allowed."""
    most = most or 2 * count
    for n in range(most):
        response = await send(n)
        if response.status_code == 429:
            assert n >= count, f"refused after only {n} requests"
            return response
    raise AssertionError(f"{most} requests and never refused")


def assert_rate_limited(response, body: dict) -> int:
    assert response.status_code == 429
    assert body["error"] == "rate_limited" and "wait" in body["message"]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


async def test_logins_from_one_address_are_limited_with_429_and_retry_after(client):
    async def attempt(n):
        response = await login(client, f"nobody{n}", "wrong password")
        assert response.status_code in (401, 429)
        return response

    response = await first_refusal(attempt, 20)
    retry_after = assert_rate_limited(response, await response.get_json())
    assert retry_after <= 60
    # Another address is counted on its own.
    assert (await login(client, "nobody0", "wrong password", address="192.0.2.2")).status_code == 401


async def test_a_browser_gets_the_limit_as_a_page(client):
    await first_refusal(lambda n: login(client, f"someone{n}", "wrong", address="192.0.2.9"), 20)
    response = await client.post("/account/login", form={"username": "x", "password": "y"},
                                 **from_address("192.0.2.9", Accept=BROWSER_ACCEPT))
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"].isdigit()
    assert "Too many requests" in await response.get_data(as_text=True)


@pytest.fixture
def settings(tmp_path):
    return {"DATA_DIR": str(tmp_path / "data"), "TRUSTED_HOPS": 1}


async def test_one_username_is_limited_whatever_the_address(client):
    await register(client, "alice")
    # A botnet: every guess from another address (one trusted proxy in front).
    for n in range(10):
        response = await login(client, "alice", "wrong password", address="10.0.0.1",
                               **{"X-Forwarded-For": f"198.51.100.{n}"})
        assert response.status_code == 401
    response = await login(client, "ALICE", PASSWORD, address="10.0.0.1", **{"X-Forwarded-For": "198.51.100.77"})
    assert_rate_limited(response, await response.get_json())  # usernames are case-insensitive
    # Other accounts are not affected.
    assert (await login(client, "bob", "wrong", address="10.0.0.1",
                        **{"X-Forwarded-For": "198.51.100.78"})).status_code == 401


async def test_a_forged_forwarded_for_does_not_reset_the_counter(client):
    # One trusted proxy: it appends the address it saw; whatever the client
    # wrote to the left is ignored.
    response = await first_refusal(
        lambda n: login(client, f"user{n}", "wrong", address="10.0.0.1",
                        **{"X-Forwarded-For": f"203.0.113.{n}, 192.0.2.50"}), 20)
    assert_rate_limited(response, await response.get_json())


async def test_without_trusted_hops_forwarded_for_is_ignored(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})  # TRUSTED_HOPS = 0
    async with app.test_app():
        client = app.test_client()
        response = await first_refusal(
            lambda n: login(client, f"user{n}", "wrong", **{"X-Forwarded-For": f"203.0.113.{n}"}), 20)
        assert_rate_limited(response, await response.get_json())


async def test_sign_ups_are_limited_per_address(client):
    for n in range(10):
        response = await client.post("/account/register", json={"username": f"new{n}", "password": PASSWORD},
                                     **from_address("10.0.0.1", **{"X-Forwarded-For": "192.0.2.60"}))
        assert response.status_code == 201
    response = await client.post("/account/register", json={"username": "new99", "password": PASSWORD},
                                 **from_address("10.0.0.1", **{"X-Forwarded-For": "192.0.2.60"}))
    assert_rate_limited(response, await response.get_json())


async def test_share_link_lookups_are_limited_per_address(alice):
    proxied = from_address("10.0.0.1", **{"X-Forwarded-For": "192.0.2.70"})

    async def lookup(n):
        response = await alice.get(f"/file/get?token=guess{n}", **proxied)
        assert response.status_code in (404, 429)
        return response

    response = await first_refusal(lookup, 120)
    assert_rate_limited(response, await response.get_json())
    response = await alice.get("/file/qr?token=guess", **proxied)
    assert response.status_code == 404  # the QR code has its own budget
    other = await alice.get("/file/get?token=guess", **from_address("10.0.0.1", **{"X-Forwarded-For": "192.0.2.71"}))
    assert other.status_code == 404  # and so has every other address


async def test_uploads_are_limited_per_user_not_per_address(app, alice):
    token = await make_token(alice)
    bob = app.test_client()
    await register(bob, "bob")
    async def post(n):
        # Each from another address, half with the cookie and half with the
        # API token: the user is what is counted.
        headers = {"X-Data-Type": "text", "X-Forwarded-For": f"192.0.2.{n % 250}"}
        if n % 2:
            headers["Authorization"] = f"Bearer {token}"
        response = await alice.post("/file/buffer", data=f"text {n}".encode(), **from_address("10.0.0.1", **headers))
        assert response.status_code in (201, 429)
        return response

    response = await first_refusal(post, 60)
    assert_rate_limited(response, await response.get_json())
    assert (await bob.post("/file/buffer", data=b"bob's", headers={"X-Data-Type": "text"})).status_code == 201


async def test_limits_can_be_turned_off(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "RATE_LIMITS": False})
    async with app.test_app():
        client = app.test_client()
        for n in range(25):
            assert (await login(client, "nobody", "wrong")).status_code == 401


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4():
    assert ratelimits._bucket_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert ratelimits._bucket_of("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert ratelimits._bucket_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert ratelimits._bucket_of("192.0.2.1") == "192.0.2.1"
    assert ratelimits._bucket_of("unknown") == "unknown"


async def test_redis_counts_are_shared_by_workers_and_an_outage_fails_open(tmp_path, redis_server, caplog):
    # Two apps on one Redis stand for two workers (or hosts).
    apps = [create_app({"DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_server.url}) for _ in range(2)]
    async with apps[0].test_app(), apps[1].test_app():
        clients = [app.test_client() for app in apps]
        # Attempts alternate between the two: refused after 20 in all, not 40.
        response = await first_refusal(lambda n: login(clients[n % 2], f"nobody{n}", "wrong"), 20, most=30)
        assert_rate_limited(response, await response.get_json())
        for client in clients:
            response = await login(client, "nobody", "wrong")
            assert_rate_limited(response, await response.get_json())
        with redis_server.client() as inspect:
            keys = inspect.keys("cloudbuffer:ratelimit:*")
            assert keys and all(inspect.ttl(key) > 0 for key in keys)  # nothing is kept forever

        redis_server.stop()
        # Redis is gone: counting goes on in each process; logins still work.
        response = await login(clients[0], "nobody", "wrong", address="192.0.2.200")
        assert response.status_code == 401
        assert "Redis unavailable" in caplog.text
        register_response = await clients[1].post("/account/register", json={"username": "carol", "password": PASSWORD},
                                                  **from_address("192.0.2.201"))
        assert register_response.status_code == 201


# --- the write budget ---------------------------------------------------------------------------------

# Ten an hour: nothing refills while a test runs, so counts are exact.
TEN_AN_HOUR = ratelimits.RateLimit(10, ratelimits.timedelta(hours=1))


async def test_a_store_grants_exactly_the_budget_however_many_ask_at_once(tmp_path, redis_server):
    # Two Redis stores are two workers; a memory store is one worker alone.
    stores = [ratelimits.RedisStore(redis_server.url), ratelimits.RedisStore(redis_server.url)]
    for store in stores:
        await store.before_serving()
    try:
        for key, askers in (("redis", stores), ("memory", [ratelimits.PruningMemoryStore()])):
            waits = await asyncio.gather(*(askers[n % len(askers)].take(key, TEN_AN_HOUR) for n in range(100)))
            assert sum(wait == 0 for wait in waits) == 10, key
            # The next arrival is one period/count after the tenth: six minutes.
            assert all(354 < wait <= 360 for wait in waits if wait > 0), key
        with redis_server.client() as inspect:
            assert 0 < inspect.ttl(ratelimits.KEY_PREFIX + "redis") <= 3601
    finally:
        for store in stores:
            await store.after_serving()


async def test_the_budget_falls_back_to_memory_while_redis_is_down(redis_server, caplog):
    store = ratelimits.RedisStore(redis_server.url)
    await store.before_serving()
    try:
        redis_server.stop()
        waits = [await store.take("down", TEN_AN_HOUR) for _ in range(11)]
        assert waits[:10] == [0.0] * 10 and waits[10] > 0
        assert "Redis unavailable" in caplog.text
    finally:
        await store.after_serving()


async def test_http_and_the_socket_spend_one_budget(app, alice):
    token = await make_token(alice)
    for n in range(40):  # the first 40 of 60, over HTTP: posts, uploads, shares
        if n % 4 == 0:
            response = await alice.post("/file/buffer", data=b"f", headers={"X-Data-Type": "file", "X-File-Name": "f"})
        elif n % 4 == 1:
            body, content_type = multipart([("file", "f.txt", b"f")])
            response = await alice.post("/file/load", data=body, headers={"Content-Type": content_type,
                                                                           "Accept": "application/json"})
        else:
            response = await alice.post("/file/buffer", data=b"t", headers={"X-Data-Type": "text"})
        assert response.status_code == 201, await response.get_data(as_text=True)
    acked, refused = 0, None
    async with app.test_client().websocket("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        for n in range(30):
            await ws.send(json.dumps({"type": "set", "text": f"set {n}", "id": n}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.receive(), 5))
                if message["type"] in ("ack", "error"):
                    break
            if message["type"] == "ack":
                acked += 1
            else:
                refused = refused or message
        # The socket stays open after a refusal (the pause: 30 messages were
        # the socket's own burst of messages, a limit of its own).
        await asyncio.sleep(0.3)
        await ws.send(json.dumps({"type": "ping", "t": 1}))
        while (message := json.loads(await asyncio.wait_for(ws.receive(), 5)))["type"] != "pong":
            pass
    # 20 left after HTTP's 40 (GCRA refills one a second: one more on a slow machine).
    assert 20 <= acked <= 22
    assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
    assert refused["message"].startswith("Too many writes") and "wait" in refused["message"]
    # And HTTP now finds the budget spent by the socket.
    response = await alice.post("/file/buffer", data=b"t", headers={"X-Data-Type": "text"})
    assert_rate_limited(response, await response.get_json())
