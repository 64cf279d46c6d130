"""/account/e2e: the key state, enabling, device keys and rotations
(server/blueprints/e2e.py, docs/e2e.md), through Quart's test client, with
real keys and wraps made by tests/e2e_keys.py."""
from __future__ import annotations

import asyncio
import os

import pytest

from server.services import services
from tests.blueprints.test_account import error_of
from tests.conftest import PASSWORD, make_token
from tests.e2e_keys import Account, KeyPair, attest, b64u, epoch_proof, unb64u, unwrap, wrap
from tests.helpers import stored_files


def off_the_curve() -> str:
    """A P-256 SPKI whose point is not on the curve: y's last bit flipped
    (changing characters of its text could leave it as it was)."""
    spki = bytearray(unb64u(KeyPair().public_b64u))
    spki[-1] ^= 1
    return b64u(bytes(spki))


async def register_user(client, username: str) -> tuple[int, str]:
    """(user id, the session as a recipient)."""
    response = await client.post("/account/register", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201
    body = await response.get_json()
    return body["id"], f"session:{body['device']['id']}"


async def enabled(client, username: str = "alice") -> tuple[Account, str]:
    user_id, device = await register_user(client, username)
    account = Account(user_id)
    response = await client.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return account, device


async def state_of(client, **headers) -> dict:
    response = await client.get("/account/e2e", headers=headers)
    assert response.status_code == 200
    return await response.get_json()


async def test_an_account_without_encryption_says_so_and_names_the_caller(client):
    user_id, device = await register_user(client, "alice")
    assert await state_of(client) == {"enabled": False, "device": device, "user_id": user_id}
    token = await make_token(client)
    token_state = await state_of(client, Authorization=f"Bearer {token}")
    assert token_state["enabled"] is False and token_state["device"].startswith("token:")


async def test_enabling_stores_the_keys_and_deletes_the_plaintext_history(client, app, settings):
    user_id, device = await register_user(client, "alice")
    await client.post("/file/buffer", data=b"old plaintext", headers={"X-Data-Type": "text"})
    await client.post("/file/buffer", data=b"old file", headers={"X-Data-Type": "file", "X-File-Name": "a.txt"})
    shared = await client.post("/file/buffer/items/2/share", json={})
    assert shared.status_code == 201
    assert len(stored_files(settings["DATA_DIR"])) == 1
    account = Account(user_id)

    response = await client.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))
    assert response.status_code == 200
    state = await response.get_json()
    assert state["enabled"] and state["epoch"] == 1 and state["rotation_needed"] is False
    assert state["recovery"]["public_key"] == account.recovery.public_b64u
    assert [d["device"] for d in state["devices"]] == [device]
    assert state["devices"][0]["public_key"] == account.device.public_b64u
    assert [w["epoch"] for w in state["wraps"]] == [1]
    assert unwrap(state["wraps"][0]["blob"], 1, account.device) == account.keys[1]

    assert (await client.get("/file/buffer")).status_code == 204
    assert (await (await client.get("/file/buffer/items")).get_json())["items"] == []
    assert stored_files(settings["DATA_DIR"]) == []
    assert (await client.get(f"/file/get/{(await shared.get_json())['token']}")).status_code == 404
    await error_of(await client.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device)),
                   409, "already_enabled")


async def test_enabling_needs_the_password_and_keeps_the_history_without_it(client):
    user_id, device = await register_user(client, "alice")
    await client.post("/file/buffer", data=b"still here", headers={"X-Data-Type": "text"})
    await error_of(await client.post("/account/e2e/enable", json=Account(user_id).enable_body("wrong " * 3, device)),
                   403, "wrong_password")
    assert await (await client.get("/file/buffer")).get_data() == b"still here"
    assert (await state_of(client))["enabled"] is False


@pytest.mark.parametrize("breakage, code", [
    (lambda body: body["device"].update(public_key=b64u(b"\x30" * 91)), "invalid_key"),
    (lambda body: body["recovery"].update(public_key=off_the_curve()), "invalid_key"),
    (lambda body: body["device"].update(public_key="not base64!"), "invalid_input"),
    (lambda body: body["wraps"][0].update(blob="a.b.c"), "invalid_wraps"),
    (lambda body: body["wraps"][1].update(recipient="self"), "invalid_wraps"),
    (lambda body: body["wraps"].pop(), "invalid_input"),
    (lambda body: body["device"].update(attest="short"), "invalid_input"),
    (lambda body: body.pop("recovery"), "invalid_input"),
])
async def test_enabling_refuses_malformed_keys_and_changes_nothing(client, breakage, code):
    user_id, device = await register_user(client, "alice")
    body = Account(user_id).enable_body(PASSWORD, device)
    breakage(body)
    await error_of(await client.post("/account/e2e/enable", json=body), 400, code)
    assert (await state_of(client))["enabled"] is False


async def test_a_point_off_the_curve_is_refused(client):
    user_id, device = await register_user(client, "alice")
    body = Account(user_id).enable_body(PASSWORD, device)
    raw = bytearray(KeyPair().spki)
    raw[-1] ^= 1  # y changed: no longer on P-256
    body["device"]["public_key"] = b64u(bytes(raw))
    message = await error_of(await client.post("/account/e2e/enable", json=body), 400, "invalid_key")
    assert "curve" in message


async def test_key_calls_on_an_account_without_encryption_are_409(client):
    await register_user(client, "alice")
    pair = KeyPair()
    await error_of(await client.put("/account/e2e/device", json={"public_key": pair.public_b64u,
                                                                 "attest": b64u(bytes(32))}), 409, "not_encrypted")
    await error_of(await client.post("/account/e2e/epochs", json={"epoch": 2, "proof": b64u(bytes(32)), "wraps": [
        {"recipient": "recovery", "blob": wrap(bytes(32), 2, pair.public_b64u)}]}), 409, "not_encrypted")


async def test_a_second_device_registers_its_key_and_its_own_wraps(client):
    account, _ = await enabled(client)
    token = await make_token(client, "cli")
    bearer = {"Authorization": f"Bearer {token}"}
    device = (await state_of(client, **bearer))["device"]
    assert (await state_of(client, **bearer))["wraps"] == []  # nothing addressed to it yet
    cli = KeyPair()
    body = {"public_key": cli.public_b64u, "attest": attest(account.keys[1], account.user_id, device, cli.public_b64u),
            "wraps": [{"epoch": 1, "blob": wrap(account.keys[1], 1, cli.public_b64u)}]}
    response = await client.put("/account/e2e/device", json=body, headers=bearer)
    assert response.status_code == 200
    state = await response.get_json()
    assert [d["device"] for d in state["devices"]][-1] == device
    assert state["devices"][-1]["name"] == "cli"
    assert unwrap(state["wraps"][0]["blob"], 1, cli) == account.keys[1]
    # A wrap for an epoch that does not exist yet: stale.
    body["wraps"] = [{"epoch": 2, "blob": wrap(account.keys[1], 2, cli.public_b64u)}]
    await error_of(await client.put("/account/e2e/device", json=body, headers=bearer), 409, "stale_key")


def rotation(account: Account, epoch: int, recipients: dict[str, str]) -> dict:
    if epoch not in account.keys:
        account.keys[epoch] = os.urandom(32)
    previous = account.keys.get(epoch - 1, bytes(32))
    return {"epoch": epoch, "proof": epoch_proof(previous, account.user_id, epoch, account.keys[epoch]),
            "wraps": [{"recipient": name, "blob": wrap(account.keys[epoch], epoch, key)}
                      for name, key in recipients.items()]}


async def test_a_rotation_needs_the_next_epoch_and_a_wrap_for_everyone(client):
    account, device = await enabled(client)
    everyone = {device: account.device.public_b64u, "recovery": account.recovery.public_b64u}
    await error_of(await client.post("/account/e2e/epochs", json=rotation(account, 3, everyone)), 409, "stale_key")
    await error_of(await client.post("/account/e2e/epochs", json=rotation(account, 1, everyone)), 400, "invalid_input")
    message = await error_of(await client.post("/account/e2e/epochs", json=rotation(
        account, 2, {device: account.device.public_b64u})), 409, "wraps_mismatch")
    assert "recovery" in message
    message = await error_of(await client.post("/account/e2e/epochs", json=rotation(
        account, 2, {**everyone, "session:999": account.device.public_b64u})), 409, "wraps_mismatch")
    assert "session:999" in message
    await error_of(await client.post("/account/e2e/epochs", json={"epoch": 2, "proof": b64u(bytes(32)), "wraps": [
        {"recipient": "recovery", "blob": "x"}, {"recipient": "recovery", "blob": "y"}]}), 400, "invalid_wraps")
    assert (await state_of(client))["epoch"] == 1

    response = await client.post("/account/e2e/epochs", json=rotation(account, 2, everyone))
    assert response.status_code == 200
    state = await response.get_json()
    assert state["epoch"] == 2 and state["rotation_needed"] is False
    assert [w["epoch"] for w in state["wraps"]] == [1, 2]
    assert unwrap(state["wraps"][1]["blob"], 2, account.device) == account.keys[2]
    # The proof is kept for every device to check the new key against the old one.
    assert state["epochs"] == [{"epoch": 2, "proof": epoch_proof(account.keys[1], account.user_id, 2,
                                                                   account.keys[2])}]
    body = rotation(account, 3, everyone)
    del body["proof"]
    await error_of(await client.post("/account/e2e/epochs", json=body), 400, "invalid_input")


async def test_a_device_without_a_registered_key_cannot_rotate(client):
    account, device = await enabled(client)
    token = await make_token(client, "cli")
    body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
    await error_of(await client.post("/account/e2e/epochs", json=body, headers={"Authorization": f"Bearer {token}"}),
                   409, "not_enrolled")


async def test_two_rotations_at_once_one_wins_the_other_is_stale(app, client):
    account, device = await enabled(client)
    body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
    other = app.test_client()
    other.cookie_jar = client.cookie_jar
    answers = await asyncio.gather(client.post("/account/e2e/epochs", json=body),
                                   other.post("/account/e2e/epochs", json=body))
    assert sorted(answer.status_code for answer in answers) == [200, 409]
    assert (await state_of(client))["epoch"] == 2


async def test_e2e_routes_need_a_login(client):
    for method, path in (("GET", "/account/e2e"), ("POST", "/account/e2e/enable"), ("PUT", "/account/e2e/device"),
                         ("POST", "/account/e2e/epochs")):
        await error_of(await client.open(path, method=method, json={}), 401, "unauthorized")


# --- revoking a device of an encrypted account ---------------------------------------------------


async def enrolled_token(client, account: Account, name: str = "cli",
                         password: str = PASSWORD) -> tuple[str, str, KeyPair]:
    """An API token that registered its key and its wraps: (token, device, its key pair)."""
    token = await make_token(client, name, password)
    bearer = {"Authorization": f"Bearer {token}"}
    device = (await state_of(client, **bearer))["device"]
    pair = KeyPair()
    response = await client.put("/account/e2e/device", headers=bearer, json={
        "public_key": pair.public_b64u, "attest": attest(account.keys[1], account.user_id, device, pair.public_b64u),
        "wraps": [{"epoch": 1, "blob": wrap(account.keys[1], 1, pair.public_b64u)}]})
    assert response.status_code == 200
    return token, device, pair


async def e2e_rows(app, column: str, value: int) -> list:
    def read(conn):
        wraps = conn.column(f"SELECT id FROM e2e_wraps WHERE {column} = ?", (value,))
        return wraps + conn.column(f"SELECT id FROM e2e_devices WHERE {column} = ? OR"
                                   " (session_id IS NULL AND token_id IS NULL)", (value,))

    return await services(app).db.read(read)


async def test_revoking_a_token_deletes_its_key_and_wraps_and_asks_for_a_rotation(app, client):
    account, device = await enabled(client)
    token, token_device, pair = await enrolled_token(client, account)
    token_id = int(token_device.split(":")[1])
    assert len((await state_of(client))["devices"]) == 2

    assert (await client.delete(f"/account/tokens/{token_id}")).status_code == 200
    state = await state_of(client)
    assert state["rotation_needed"] is True
    assert [d["device"] for d in state["devices"]] == [device]
    assert await e2e_rows(app, "token_id", token_id) == []
    assert await services(app).db.read(lambda conn: conn.value("SELECT COUNT(*) FROM e2e_devices WHERE public_key = ?",
                                                     (pair.public_b64u,))) == 0

    # The rotation needs no wrap for the revoked token, and clears the flag.
    body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
    response = await client.post("/account/e2e/epochs", json=body)
    assert response.status_code == 200
    assert (await response.get_json())["rotation_needed"] is False


async def test_logging_out_other_devices_and_a_session_of_its_own_ask_for_a_rotation(app, client):
    account, device = await enabled(client)
    other = app.test_client()
    login = await other.post("/account/login", json={"username": "alice", "password": PASSWORD})
    other_device = f"session:{(await login.get_json())['device']['id']}"
    pair = KeyPair()
    await other.put("/account/e2e/device", json={"public_key": pair.public_b64u, "attest": attest(
        account.keys[1], account.user_id, other_device, pair.public_b64u)})
    assert (await client.post("/account/sessions/log-out-others")).status_code == 200
    state = await state_of(client)
    assert state["rotation_needed"] is True and [d["device"] for d in state["devices"]] == [device]

    body = rotation(account, 2, {device: account.device.public_b64u, "recovery": account.recovery.public_b64u})
    assert (await client.post("/account/e2e/epochs", json=body)).status_code == 200
    assert (await state_of(client))["rotation_needed"] is False
    # Logging out (the device itself) is a revoke too.
    third = app.test_client()
    await third.post("/account/login", json={"username": "alice", "password": PASSWORD})
    assert (await third.post("/account/logout")).status_code == 200
    assert (await state_of(client))["rotation_needed"] is True


async def test_a_password_change_that_ends_devices_asks_for_a_rotation_one_that_ends_none_does_not(client):
    account, _ = await enabled(client)
    changed = await client.post("/account/password", json={"current_password": PASSWORD,
                                                           "new_password": "another long passphrase"})
    assert (await changed.get_json())["sessions_ended"] == 0
    assert (await state_of(client))["rotation_needed"] is False
    await enrolled_token(client, account, password="another long passphrase")
    await client.post("/account/password", json={"current_password": "another long passphrase",
                                                 "new_password": "a third long passphrase"})
    assert (await state_of(client))["rotation_needed"] is True


async def test_revoking_a_device_of_an_account_without_encryption_changes_no_e2e_state(app, client):
    await register_user(client, "alice")
    token = await make_token(client)
    token_id = (await state_of(client, Authorization=f"Bearer {token}"))["device"].split(":")[1]
    assert (await client.delete(f"/account/tokens/{token_id}")).status_code == 200
    assert (await state_of(client))["enabled"] is False


async def test_registering_a_device_refuses_bad_keys_attestations_and_wraps(client):
    account, _ = await enabled(client)
    pair = KeyPair()
    good = {"public_key": pair.public_b64u, "attest": attest(account.keys[1], account.user_id, "x", pair.public_b64u)}
    for body, code in (({**good, "public_key": off_the_curve()}, "invalid_key"),
                       ({**good, "attest": b64u(bytes(31))}, "invalid_input"),
                       ({**good, "wraps": [{"epoch": 1, "blob": "x.y.z"}]}, "invalid_wraps"),
                       ({**good, "wraps": [{"epoch": 1, "blob": wrap(bytes(32), 1, pair.public_b64u)}] * 2},
                        "invalid_wraps")):
        await error_of(await client.put("/account/e2e/device", json=body), 400, code)
    assert len((await state_of(client))["devices"]) == 1


async def test_enabling_from_a_form_is_refused_in_words(client):
    await register_user(client, "alice")
    response = await client.post("/account/e2e/enable", form={"password": PASSWORD, "recovery": "x"},
                                 headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert (await state_of(client))["enabled"] is False
