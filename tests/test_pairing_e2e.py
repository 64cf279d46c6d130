""""Add a device" over real HTTP (a real `cloudbuffer serve`, rate limits
on): single use, approval by a logged-in device only, the opaque payloads
each way kept only until taken, and guessing held back per address."""
from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import PASSWORD
from tests.helpers import COOKIE_NAME
from tests.live_server import LiveServer
from tests.test_e2e import assert_error, client_for, register


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("pairing"))
    live.start()
    yield live
    live.stop()


def rows(server: LiveServer) -> list:
    with sqlite3.connect(server.data_dir / "cloudbuffer.sqlite3") as conn:
        return conn.execute("SELECT * FROM pairings").fetchall()


def test_a_new_device_joins_with_the_code_and_the_payloads_travel_once(server):
    with register(server, "pairer") as laptop, client_for(server) as phone:
        made = laptop.post("/account/pairings")
        assert made.status_code == 201
        code = made.json()["code"]
        assert made.json()["url"] == f"{server.base_url}/pair?code={code.replace('-', '')}"
        assert made.json()["qr_svg"].startswith("<svg")
        assert code.encode() not in (server.data_dir / "cloudbuffer.sqlite3").read_bytes()

        # Typed sloppily: lower case, no dash, O for 0 and l for 1 are forgiven.
        typed = code.replace("-", "").lower().replace("0", "o").replace("1", "l")
        claimed = phone.post("/pair", json={"code": typed, "device_name": "Phone", "payload": "phone public key"})
        assert claimed.status_code == 201, claimed.text
        claim = {"X-Pairing-Claim": claimed.json()["claim"]}
        phone.cookies.clear()  # an app without cookies waits with the header
        assert phone.get("/pair/status", headers=claim).json()["status"] == "claimed"
        assert_error(phone.post("/pair/complete", headers=claim), 409, "not_approved")
        # Single use: the code is spent.
        with client_for(server) as intruder:
            assert_error(intruder.post("/pair", json={"code": code, "device_name": "Intruder"}), 404, "invalid_code")

        seen = laptop.get(f"/account/pairings/{made.json()['id']}").json()
        assert (seen["status"], seen["device_name"], seen["request_payload"]) == ("claimed", "Phone",
                                                                                 "phone public key")
        approved = laptop.post(f"/account/pairings/{made.json()['id']}/approve", json={"payload": "wrapped key"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert_error(laptop.post(f"/account/pairings/{made.json()['id']}/refuse"), 409, "not_waiting")

        assert phone.get("/pair/status", headers=claim).json()["status"] == "approved"
        done = phone.post("/pair/complete", headers=claim)
        assert done.status_code == 200, done.text
        assert done.json()["username"] == "pairer" and done.json()["payload"] == "wrapped key"
        assert done.json()["device"]["name"] == "Phone" and COOKIE_NAME in phone.cookies
        assert phone.get("/file/buffer").status_code == 204  # logged in
        assert rows(server) == []  # the payloads went with the row
        assert_error(phone.post("/pair/complete", headers=claim), 404, "invalid_claim")


def test_only_a_logged_in_device_may_add_one(server):
    with register(server, "scripted") as laptop:
        token = laptop.post("/account/tokens", json={"name": "script", "password": PASSWORD}).json().get("token")
    with client_for(server, headers={"Authorization": f"Bearer {token}"}) as script:
        assert_error(script.post("/account/pairings"), 403, "session_required")
    with client_for(server) as stranger:
        assert_error(stranger.post("/account/pairings"), 401, "unauthorized")
        assert_error(stranger.get("/pair/status"), 404, "invalid_claim")
        assert_error(stranger.post("/pair/complete", headers={"X-Pairing-Claim": "made-up"}), 404, "invalid_claim")


def test_guessing_codes_is_rate_limited_per_address(server):
    with client_for(server) as guesser:
        answers = [guesser.post("/pair", json={"code": f"{n:010d}", "device_name": "guess"}).status_code
                   for n in range(12)]
    # Ten tries a minute per address, counting the other tests' claims from 127.0.0.1.
    first_refused = answers.index(429)
    assert set(answers[:first_refused]) == {404} and set(answers[first_refused:]) == {429}
    assert 10 - 3 <= first_refused <= 10
