"""Revocation and rotation (client/cloudbuffer_client/vault.py) through the
real CLI and server: after a device is revoked, the next write of an
enrolled terminal (or its agent, on the live `e2e` message) makes a new
epoch with its proof, every remaining device can read what follows, and
the revoked device's keys cannot open it."""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess

import httpx
import pytest

from cloudbuffer_client import keystore, sealed
from tests import e2e_keys
from tests.client.conftest import Background
from tests.client.test_agent import display  # noqa: F401  (fixture: a private Xvfb)
from tests.client.test_pair import browser, pair_with_browser
from tests.live_server import cloudbuffer_executable


def token_id_of(cli) -> int:
    import tomllib

    return tomllib.loads(cli.config_file.read_text())["token_id"]


def learn_new_epochs(http: httpx.Client, account: e2e_keys.Account) -> None:
    """The browser takes each new epoch's key from its wrap, checking the proof
    under the key before (independently of the client's code)."""
    state = http.get("/account/e2e").json()
    proofs = {entry["epoch"]: entry["proof"] for entry in state.get("epochs", [])}
    for wrap in sorted(state["wraps"], key=lambda w: w["epoch"]):
        if wrap["epoch"] in account.keys:
            continue
        key = e2e_keys.unwrap(wrap["blob"], wrap["epoch"], account.device)
        message = f"epoch {wrap['epoch']} {e2e_keys.b64u(key)}".encode()
        expected = e2e_keys.b64u(hmac.new(e2e_keys.ikm(account.keys[wrap["epoch"] - 1], account.user_id),
                                          message, hashlib.sha256).digest())
        assert proofs[wrap["epoch"]] == expected
        account.keys[wrap["epoch"]] = key


@pytest.fixture
def three_devices(server, cli_factory, spawn):
    """A browser that turned encryption on, and two terminals paired with it."""
    http, account = browser(server)
    desk, laptop = cli_factory("desk"), cli_factory("laptop")
    pair_with_browser(server, http, account, desk, spawn)
    pair_with_browser(server, http, account, laptop, spawn)
    return http, account, desk, laptop


def revoke(http: httpx.Client, cli) -> None:
    response = http.delete(f"/account/tokens/{token_id_of(cli)}")
    assert response.status_code == 200, response.text


def test_a_revoked_device_cannot_decrypt_what_is_posted_after(server, three_devices):
    http, account, desk, laptop = three_devices
    assert desk.run("copy", input="before the revoke").returncode == 0
    assert laptop.run("paste").stdout == b"before the revoke"
    laptop_keys = json.loads((laptop.home / "cloudbuffer" / "e2e.json").read_text())

    revoke(http, laptop)
    state = http.get("/account/e2e").json()
    assert state["rotation_needed"] and state["epoch"] == 1
    copied = desk.run("copy", input="after the revoke: cobalt-31")
    assert copied.returncode == 0, copied.stderr
    assert b"rotated the account key to epoch 2" in copied.stderr
    state = http.get("/account/e2e").json()
    assert state["epoch"] == 2 and not state["rotation_needed"]
    assert desk.run("paste").stdout == b"after the revoke: cobalt-31"

    # The browser, still a device, reads it with the new key.
    learn_new_epochs(http, account)
    raw = http.get("/file/buffer")
    _, _, body = account.open_item(raw.headers["X-Encrypted-Key"], raw.headers["X-Encrypted-Meta"], raw.content)
    assert body == b"after the revoke: cobalt-31"
    # The revoked laptop: its token no longer works, and even holding the
    # ciphertext its keys (epoch 1 only) do not open the item.
    refused = laptop.run("paste")
    assert refused.returncode == 3
    store = keystore.Keystore.from_json(laptop_keys)
    assert set(store.epochs) == {1}
    with pytest.raises(sealed.SealedError, match="no key for epoch 2"):
        sealed.open_item(raw.headers["X-Encrypted-Key"], raw.headers["X-Encrypted-Meta"], store.ikm)
    # What it had before the revoke, it could still open (docs/security.md says so).
    old = http.get("/file/buffer/items").json()["items"][-1]
    assert sealed.open_item(old["key"], old["meta"], store.ikm).kind == "text"


def test_the_agent_rotates_on_the_live_message(server, three_devices, display):
    """No write needed: the agent hears the revoke and rotates at once."""
    http, account, desk, laptop = three_devices
    agent = Background(subprocess.Popen([cloudbuffer_executable(), "agent"], cwd=desk.cwd,
                                        env={**desk.env, "DISPLAY": display, "WAYLAND_DISPLAY": ""},
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        agent.wait_for_stderr("syncing the clipboard")
        revoke(http, laptop)
        agent.wait_for_stderr("rotated the account key to epoch 2")
        state = http.get("/account/e2e").json()
        assert state["epoch"] == 2 and not state["rotation_needed"]
        assert {device["device"] for device in state["devices"]} == {state["device"], f"token:{token_id_of(desk)}"}
        learn_new_epochs(http, account)
        assert set(account.keys) == {1, 2}
    finally:
        agent.stop()


def test_a_new_epoch_without_a_valid_proof_is_refused(server, three_devices):
    """What a malicious server could do: wrap a key of its own to every
    device as "the next epoch". Played here by the browser posting a rotation
    whose proof is not made under epoch 1's key: the terminal refuses it and
    writes nothing under a key someone else may know."""
    http, account, desk, _ = three_devices
    state = http.get("/account/e2e").json()
    planted = b"\x42" * 32
    wraps = [{"recipient": "recovery", "blob": e2e_keys.wrap(planted, 2, state["recovery"]["public_key"])}]
    wraps += [{"recipient": device["device"], "blob": e2e_keys.wrap(planted, 2, device["public_key"])}
              for device in state["devices"]]
    bogus = e2e_keys.b64u(hmac.new(b"\0" * 32, b"epoch 2 " + e2e_keys.b64u(planted).encode(), hashlib.sha256).digest())
    rotated = http.post("/account/e2e/epochs", json={"epoch": 2, "proof": bogus, "wraps": wraps})
    assert rotated.status_code == 200, rotated.text
    result = desk.run("copy", input="must not go under the planted key")
    assert result.returncode == 3
    assert b"refusing the key of epoch 2" in result.stderr
    assert http.get("/file/buffer").status_code == 204  # nothing was posted
    stored = json.loads((desk.home / "cloudbuffer" / "e2e.json").read_text())
    assert set(stored["epochs"]) == {"1"}


def test_proven_chain_keeps_keys_up_to_the_first_missing_proof():
    """What `e2e recover` applies to the keys wrapped to the recovery key."""
    from cloudbuffer_client import keys
    from cloudbuffer_client.vault import proven_chain

    chain = {epoch: keys.new_account_key() for epoch in (1, 2, 3, 4)}
    proofs = [{"epoch": epoch, "proof": keys.epoch_proof(keys.items_ikm(chain[epoch - 1], 9), epoch, chain[epoch])}
              for epoch in (2, 3, 4)]
    assert proven_chain(chain, proofs, 9) == chain
    assert proven_chain(chain, proofs, 10) == {1: chain[1]}  # proofs are bound to the user too
    proofs[1]["proof"] = proofs[0]["proof"]
    assert proven_chain(chain, proofs, 9) == {1: chain[1], 2: chain[2]}
    assert proven_chain({2: chain[2]}, proofs, 9) == {}
