"""Pairing with keys (docs/e2e.md, "Pairing with keys"): the code commits to
the showing device's key, in both flows, and a CLI can complete as an API
token. Real P-256 keys and wraps (tests/e2e_keys.py); the server never sees
the shared secret or the SAS."""
from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric import ec

from tests.blueprints.test_account import error_of
from tests.blueprints.test_e2e import enabled, register_user, state_of
from tests.conftest import make_token
from tests.e2e_keys import KeyPair, attest, hkdf, unwrap, wrap
from tests.blueprints.test_e2e_buffer import post

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def code_of(pair: KeyPair) -> str:
    number = int.from_bytes(hashlib.sha256(pair.spki).digest()[:7], "big") >> 6
    code = "".join(ALPHABET[(number >> (5 * (9 - i))) & 31] for i in range(10))
    return f"{code[:5]}-{code[5:]}"


def sas(mine: KeyPair, theirs: KeyPair, shower: KeyPair, scanner: KeyPair) -> str:
    shared = mine.private.exchange(ec.ECDH(), theirs.private.public_key())
    value = int.from_bytes(hkdf(shared, shower.spki + scanner.spki, b"cloudbuffer sas v1", 4), "big") >> 12
    return f"{value % 1_000_000:06d}"


def wraps_for(account, pair: KeyPair) -> str:
    return json.dumps({"wraps": [{"epoch": epoch, "blob": wrap(key, epoch, pair.public_b64u)}
                                 for epoch, key in sorted(account.keys.items())]})


async def test_flow_a_the_enrolled_device_shows_and_a_cli_joins_as_a_token(app, client):
    account, _ = await enabled(client)
    shower = KeyPair()
    made = await client.post("/account/pairings", json={"payload": shower.public_b64u})
    assert made.status_code == 201, await made.get_data(as_text=True)
    shown = await made.get_json()
    assert shown["code"] == code_of(shower)  # the code commits to the key

    cli = app.test_client()
    fetched = await cli.get(f"/pair/payload?code={shown['code']}")
    assert fetched.status_code == 200
    assert (await fetched.get_json())["payload"] == shower.public_b64u
    scanner = KeyPair()
    claimed = await cli.post("/pair", json={"code": shown["code"], "device_name": "build-box",
                                            "payload": scanner.public_b64u})
    assert claimed.status_code == 201
    claim = {"X-Pairing-Claim": (await claimed.get_json())["claim"]}
    # The code is spent: its key is no longer handed out.
    await error_of(await cli.get(f"/pair/payload?code={shown['code']}"), 404, "invalid_code")

    seen = await (await client.get(f"/account/pairings/{shown['id']}")).get_json()
    assert seen["request_payload"] == scanner.public_b64u
    assert sas(shower, scanner, shower, scanner) == sas(scanner, shower, shower, scanner)
    approved = await client.post(f"/account/pairings/{shown['id']}/approve", json={"payload": wraps_for(account, scanner)})
    assert approved.status_code == 200

    done = await cli.post("/pair/complete", json={"as": "token"}, headers=claim)
    assert done.status_code == 200, await done.get_data(as_text=True)
    body = await done.get_json()
    assert body["device"]["kind"] == "token" and body["device"]["name"] == "build-box"
    assert body["token"].startswith("cb_")
    wrapped = json.loads(body["payload"])["wraps"]
    assert unwrap(wrapped[0]["blob"], 1, scanner) == account.keys[1]

    bearer = {"Authorization": f"Bearer {body['token']}"}
    device = (await state_of(cli, **bearer))["device"]
    assert device == f"token:{body['device']['id']}"
    own = KeyPair()
    registered = await cli.put("/account/e2e/device", headers=bearer, json={
        "public_key": own.public_b64u, "attest": attest(account.keys[1], account.user_id, device, own.public_b64u),
        "wraps": [{"epoch": 1, "blob": wrap(account.keys[1], 1, own.public_b64u)}]})
    assert registered.status_code == 200
    # The CLI posts; the laptop reads and opens it.
    item = account.item(b"from the terminal")
    assert (await post(cli, item, Authorization=bearer["Authorization"])).status_code == 201
    got = await client.get("/file/buffer")
    assert account.open_item(got.headers["X-Encrypted-Key"], got.headers["X-Encrypted-Meta"],
                             await got.get_data())[2] == b"from the terminal"


async def test_flow_b_the_new_device_shows_and_a_logged_in_device_takes_it(app, client):
    account, _ = await enabled(client)
    newcomer = app.test_client()
    shower = KeyPair()
    opened = await newcomer.post("/pair/requests", json={"device_name": "Tablet", "payload": shower.public_b64u})
    assert opened.status_code == 201, await opened.get_data(as_text=True)
    request = await opened.get_json()
    assert request["code"] == code_of(shower)
    assert request["url"].endswith(f"/account/pair?code={request['code'].replace('-', '')}")
    claim = {"X-Pairing-Claim": request["claim"]}
    status = await (await newcomer.get("/pair/status", headers=claim)).get_json()
    assert (status["status"], status["offer_payload"]) == ("open", None)

    assert (await (await client.get(f"/pair/payload?code={request['code']}")).get_json())["payload"] == \
        shower.public_b64u
    scanner = KeyPair()
    taken = await client.post("/account/pairings/claim", json={"code": request["code"], "payload": scanner.public_b64u})
    assert taken.status_code == 200, await taken.get_data(as_text=True)
    pairing = await taken.get_json()
    assert (pairing["status"], pairing["device_name"], pairing["request_payload"]) == ("claimed", "Tablet",
                                                                                      shower.public_b64u)
    await error_of(await client.post("/account/pairings/claim", json={"code": request["code"],
                                                                      "payload": scanner.public_b64u}),
                   404, "invalid_code")  # taken once

    status = await (await newcomer.get("/pair/status", headers=claim)).get_json()
    assert (status["status"], status["offer_payload"]) == ("claimed", scanner.public_b64u)
    assert sas(shower, scanner, shower, scanner) == sas(scanner, shower, shower, scanner)
    await error_of(await newcomer.post("/pair/complete", headers=claim), 409, "not_approved")
    assert (await client.post(f"/account/pairings/{pairing['id']}/approve",
                              json={"payload": wraps_for(account, shower)})).status_code == 200
    done = await newcomer.post("/pair/complete", headers=claim)
    assert done.status_code == 200
    body = await done.get_json()
    assert body["device"]["kind"] == "session" and "token" not in body
    assert unwrap(json.loads(body["payload"])["wraps"][0]["blob"], 1, shower) == account.keys[1]
    assert (await state_of(newcomer))["device"] == f"session:{body['device']['id']}"


async def test_a_code_already_live_is_409_so_the_device_makes_a_new_key(app, client):
    await register_user(client, "alice")
    pair = KeyPair()
    assert (await client.post("/account/pairings", json={"payload": pair.public_b64u})).status_code == 201
    other = app.test_client()
    await error_of(await other.post("/pair/requests", json={"device_name": "x", "payload": pair.public_b64u}),
                   409, "code_taken")
    first = KeyPair()
    assert (await other.post("/pair/requests", json={"device_name": "x", "payload": first.public_b64u})
            ).status_code == 201
    await error_of(await other.post("/pair/requests", json={"device_name": "y", "payload": first.public_b64u}),
                   409, "code_taken")
    # The same device asking again with the same key replaces its own code.
    assert (await client.post("/account/pairings", json={"payload": pair.public_b64u})).status_code == 201


async def test_payloads_that_are_not_p256_keys_are_400(app, client):
    await register_user(client, "alice")
    for bad in ("not a key", KeyPair().public_b64u[:-4]):
        await error_of(await client.post("/account/pairings", json={"payload": bad}), 400, "invalid_key")
        await error_of(await app.test_client().post("/pair/requests", json={"device_name": "x", "payload": bad}),
                       400, "invalid_key")
        await error_of(await client.post("/account/pairings/claim", json={"code": "ABCDE-FGHJK", "payload": bad}),
                       400, "invalid_key")


async def test_each_flow_takes_only_its_own_codes(app, client):
    await register_user(client, "alice")
    offer = await (await client.post("/account/pairings", json={"payload": KeyPair().public_b64u})).get_json()
    await error_of(await client.post("/account/pairings/claim", json={"code": offer["code"],
                                                                      "payload": KeyPair().public_b64u}),
                   404, "invalid_code")
    newcomer = app.test_client()
    request = await (await newcomer.post("/pair/requests", json={"device_name": "x",
                                                                 "payload": KeyPair().public_b64u})).get_json()
    await error_of(await app.test_client().post("/pair", json={"code": request["code"], "device_name": "thief"}),
                   404, "invalid_code")


async def test_a_random_code_has_no_key_to_fetch(app, client):
    await register_user(client, "alice")
    plain = await (await client.post("/account/pairings")).get_json()
    await error_of(await app.test_client().get(f"/pair/payload?code={plain['code']}"), 404, "invalid_code")
    await error_of(await app.test_client().get("/pair/payload?code=nonsense"), 404, "invalid_code")


async def open_request(app, name: str = "laptop") -> tuple[KeyPair, dict, dict]:
    shower = KeyPair()
    request = await (await app.test_client().post("/pair/requests", json={"device_name": name,
                                                                          "payload": shower.public_b64u})).get_json()
    return shower, request, {"X-Pairing-Claim": request["claim"]}


async def test_a_terminals_token_takes_a_request_and_its_device_joins_as_a_token_only(app, client):
    """An enrolled terminal (an API token) approves a terminal joining (flow
    B); the device it lets in is an API token, never a browser session, so a
    token is no way to mint sessions."""
    account, _ = await enabled(client)
    bearer = {"Authorization": f"Bearer {await make_token(client)}"}
    terminal = app.test_client()
    shower, request, claim = await open_request(app)
    taken = await terminal.post("/account/pairings/claim", headers=bearer,
                                json={"code": request["code"], "payload": KeyPair().public_b64u})
    assert taken.status_code == 200, await taken.get_data(as_text=True)
    pairing = await taken.get_json()
    approved = await terminal.post(f"/account/pairings/{pairing['id']}/approve", headers=bearer,
                                   json={"payload": wraps_for(account, shower)})
    assert approved.status_code == 200 and (await approved.get_json())["status"] == "approved"

    newcomer = app.test_client()
    await error_of(await newcomer.post("/pair/complete", headers=claim, json={}), 403, "session_required")
    done = await newcomer.post("/pair/complete", headers=claim, json={"as": "token"})  # still there after the 403
    assert done.status_code == 200, await done.get_data(as_text=True)
    body = await done.get_json()
    assert body["device"]["kind"] == "token" and body["token"].startswith("cb_")
    state = await state_of(app.test_client(), Authorization=f"Bearer {body['token']}")
    assert state["device"] == f"token:{body['device']['id']}"


async def test_a_token_answers_only_the_requests_it_took(app, client):
    """A session's own code (flow A) or a request a session took stays the
    session's to answer: else the device that claimed it would become a
    browser session let in by a token."""
    await enabled(client)
    bearer = {"Authorization": f"Bearer {await make_token(client)}"}
    offer = await (await client.post("/account/pairings", json={"payload": KeyPair().public_b64u})).get_json()
    await app.test_client().post("/pair", json={"code": offer["code"], "device_name": "phone",
                                                "payload": KeyPair().public_b64u})
    _, request, _ = await open_request(app)
    taken = await (await client.post("/account/pairings/claim", json={"code": request["code"],
                                                                      "payload": KeyPair().public_b64u})).get_json()
    for pairing_id in (offer["id"], taken["id"]):
        for verb in ("approve", "refuse"):
            await error_of(await app.test_client().post(f"/account/pairings/{pairing_id}/{verb}", headers=bearer,
                                                        json={}), 403, "session_required")
        assert (await (await client.get(f"/account/pairings/{pairing_id}")).get_json())["status"] == "claimed"
    await error_of(await app.test_client().post("/account/pairings", headers=bearer, json={}),
                   403, "session_required")


async def test_the_recovery_wraps_and_the_user_id_are_in_the_state(app, client):
    account, device = await enabled(client)
    state = await state_of(client)
    assert state["user_id"] == account.user_id
    assert [wrap["epoch"] for wrap in state["recovery"]["wraps"]] == [1]
    assert unwrap(state["recovery"]["wraps"][0]["blob"], 1, account.recovery) == account.keys[1]


async def test_complete_takes_only_session_or_token(app, client):
    await register_user(client, "alice")
    await error_of(await app.test_client().post("/pair/complete", json={"as": "root"},
                                                headers={"X-Pairing-Claim": "x"}), 400, "invalid_input")


async def test_fetching_shown_keys_is_limited_per_address_like_claims(app):
    guesser = app.test_client()
    answers = [(await guesser.get(f"/pair/payload?code={n:010d}")).status_code for n in range(11)]
    assert answers[:10] == [404] * 10 and answers[10] == 429
    answers = [(await guesser.post("/pair/requests", json={"device_name": "x", "payload": KeyPair().public_b64u})
                ).status_code for _ in range(11)]
    assert answers[:10] == [201] * 10 and answers[10] == 429
