"""`cloudbuffer pair` through the real pairing flow against a real server:
a new terminal shows a code and gets the key, the verification codes on
both sides agree, a "no" aborts, and two CLI devices then read each
other's encrypted items. The other side is either another `cloudbuffer`
or a browser session played with tests/e2e_keys.py, an implementation of
docs/e2e.md independent of the client's."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import e2e_keys
from tests.client.test_e2e import enable
from tests.conftest import PASSWORD
from tests.live_server import wait_for

LINK = re.compile(r"`cloudbuffer pair (\S+)`")


def browser(server) -> tuple[httpx.Client, e2e_keys.Account]:
    """A logged-in browser session of alice that turned encryption on."""
    http = httpx.Client(base_url=server.base_url, timeout=10)
    login = http.post("/account/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200, login.text
    account = e2e_keys.Account(user_id=login.json()["id"])
    device = http.get("/account/e2e").json()["device"]
    enabled = http.post("/account/e2e/enable", json=account.enable_body(PASSWORD, device))
    assert enabled.status_code == 200, enabled.text
    return http, account


def link_of(job) -> str:
    job.wait_for_stderr("cloudbuffer pair http")
    return LINK.search(job.line_with("cloudbuffer pair http")).group(1)


def sas_of(job) -> str:
    job.wait_for_stderr("Verification code:")
    return job.line_with("Verification code:").split(":", 1)[1].strip()


def browser_claims(http: httpx.Client, link: str) -> tuple[dict, e2e_keys.KeyPair, bytes, str]:
    """The browser scans the link: checks the key against the code, claims
    with its own key, and computes the verification code."""
    parts = urlsplit(link)
    code = parse_qs(parts.query)["code"][0]
    shower_spki = e2e_keys.unb64u(parts.fragment.removeprefix("k="))
    from tests.blueprints.test_e2e_pairing import code_of
    assert code_of(type("K", (), {"spki": shower_spki})()).replace("-", "") == code.replace("-", "")
    scanner = e2e_keys.KeyPair()
    claimed = http.post("/account/pairings/claim", json={"code": code, "payload": scanner.public_b64u})
    assert claimed.status_code == 200, claimed.text
    pairing = claimed.json()
    assert pairing["request_payload"] == e2e_keys.b64u(shower_spki)
    shared = scanner.private.exchange(ec.ECDH(), serialization.load_der_public_key(shower_spki))
    value = int.from_bytes(e2e_keys.hkdf(shared, shower_spki + scanner.spki, b"cloudbuffer sas v1", 4), "big") >> 12
    return pairing, scanner, shower_spki, f"{value % 1_000_000:06d}"


def pairing_wrap(account_key: bytes, epoch: int, sender: e2e_keys.KeyPair, recipient_spki: bytes) -> str:
    """docs/e2e.md's wrap, made with the approving device's pairing key pair."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    shared = sender.private.exchange(ec.ECDH(), serialization.load_der_public_key(recipient_spki))
    w = e2e_keys.hkdf(shared, sender.spki + recipient_spki, b"cloudbuffer wrap v1")
    nonce = os.urandom(12)
    sealed = AESGCM(w).encrypt(nonce, account_key, f"cloudbuffer wrap v1 epoch {epoch}".encode())
    return ".".join((sender.public_b64u, e2e_keys.b64u(nonce), e2e_keys.b64u(sealed)))


def approve(http: httpx.Client, account: e2e_keys.Account, pairing: dict, shower_spki: bytes,
            scanner: e2e_keys.KeyPair, fresh_ephemeral: bool = False) -> None:
    def one(key: bytes, epoch: int) -> str:
        if fresh_ephemeral:
            return e2e_keys.wrap(key, epoch, e2e_keys.b64u(shower_spki))
        return pairing_wrap(key, epoch, scanner, shower_spki)

    payload = json.dumps({"wraps": [{"epoch": epoch, "blob": one(key, epoch)}
                                    for epoch, key in sorted(account.keys.items())]})
    approved = http.post(f"/account/pairings/{pairing['id']}/approve", json={"payload": payload})
    assert approved.status_code == 200, approved.text


def pair_with_browser(server, http: httpx.Client, account: e2e_keys.Account, cli, spawn) -> None:
    """`cloudbuffer pair` on `cli`, approved by the browser session; both say yes."""
    job = spawn(cli, "pair", "--server", server.base_url)
    pairing, scanner, shower_spki, expected = browser_claims(http, link_of(job))
    assert sas_of(job).replace(" ", "") == expected
    job.answer("y")
    approve(http, account, pairing, shower_spki, scanner)
    assert job.wait() == 0, job.stderr


def test_a_new_terminal_shows_a_code_and_joins_with_the_key(server, cli, spawn):
    http, account = browser(server)
    job = spawn(cli, "pair", "--server", server.base_url)
    link = link_of(job)
    assert "/account/pair?code=" in link and "#k=" in link
    pairing, scanner, shower_spki, expected = browser_claims(http, link)
    assert sas_of(job).replace(" ", "") == expected  # both screens show the same six digits
    job.answer("y")
    approve(http, account, pairing, shower_spki, scanner)
    assert job.wait() == 0, job.stderr
    assert cli.config_file.exists() and (cli.home / "cloudbuffer" / "e2e.json").exists()
    # The new terminal is an API token device with a registered, attested key.
    state = http.get("/account/e2e").json()
    terminal = next(device for device in state["devices"] if device["device"].startswith("token:"))
    assert terminal["attest"] == e2e_keys.attest(account.keys[1], account.user_id, terminal["device"],
                                                 terminal["public_key"])

    # What the terminal copies, the browser opens with the independent implementation; and back.
    assert cli.run("copy", input="from the terminal: heliotrope-42").returncode == 0
    raw = http.get("/file/buffer")
    _, meta, body = account.open_item(raw.headers["X-Encrypted-Key"], raw.headers["X-Encrypted-Meta"], raw.content)
    assert meta["kind"] == "text" and body == b"from the terminal: heliotrope-42"
    item = account.item(b"from the browser: vermilion-7")
    posted = http.post("/file/buffer", content=item.body, headers=e2e_keys.headers(item))
    assert posted.status_code == 201, posted.text
    pasted = cli.run("paste")
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout == b"from the browser: vermilion-7"


def test_a_no_to_the_verification_code_keeps_nothing(server, cli, spawn):
    http, account = browser(server)
    job = spawn(cli, "pair", "--server", server.base_url)
    pairing, scanner, shower_spki, _ = browser_claims(http, link_of(job))
    sas_of(job)
    job.answer("n")
    assert job.wait() == 3
    assert "codes differ" in "\n".join(job.stderr)
    # Even an approval sent afterwards gives this terminal nothing.
    approve(http, account, pairing, shower_spki, scanner)
    assert not cli.config_file.exists() and not (cli.home / "cloudbuffer" / "e2e.json").exists()
    assert [device["device"] for device in http.get("/account/e2e").json()["devices"]] == [
        http.get("/account/e2e").json()["device"]]


def test_wraps_not_made_with_the_verified_key_are_refused(server, cli, spawn):
    """What a server could do, knowing the new device's public key: approve
    with wraps of its own. The codes matched, yet the terminal keeps nothing."""
    http, account = browser(server)
    job = spawn(cli, "pair", "--server", server.base_url)
    pairing, scanner, shower_spki, _ = browser_claims(http, link_of(job))
    sas_of(job)
    job.answer("y")
    approve(http, account, pairing, shower_spki, scanner, fresh_ephemeral=True)
    assert job.wait() == 3
    assert "not made by the device whose code you confirmed" in "\n".join(job.stderr)
    assert not (cli.home / "cloudbuffer" / "e2e.json").exists() and not cli.config_file.exists()
    assert http.get("/account/profile", headers={"Accept": "application/json"}).json()["tokens"] == []


def test_two_terminals_pair_and_read_each_other(server, logged_in, cli_factory, spawn):
    """The enrolled terminal approves with `cloudbuffer pair LINK`; the person
    sees the same code on both and says yes on both."""
    enable(logged_in)
    laptop = cli_factory("laptop")
    joining = spawn(laptop, "pair", "--server", server.base_url)
    approving = spawn(logged_in, "pair", link_of(joining))
    shown_there = sas_of(approving)
    shown_here = sas_of(joining)
    assert re.fullmatch(r"\d{3} \d{3}", shown_here) and shown_here == shown_there
    approving.answer("y")
    joining.answer("y")
    assert approving.wait() == 0, approving.stderr
    assert joining.wait() == 0, joining.stderr

    assert logged_in.run("copy", input="desk to laptop: saffron-99").returncode == 0
    assert laptop.run("paste").stdout == b"desk to laptop: saffron-99"
    (laptop.cwd / "notes.bin").write_bytes(bytes(range(256)) * 1000)
    assert laptop.run("copy", "notes.bin").returncode == 0
    got = logged_in.run("paste", "-O")
    assert got.returncode == 0, got.stderr
    assert (logged_in.cwd / "notes.bin").read_bytes() == bytes(range(256)) * 1000


def test_a_no_on_the_approving_terminal_refuses_the_pairing(server, logged_in, cli_factory, spawn):
    enable(logged_in)
    laptop = cli_factory("laptop")
    joining = spawn(laptop, "pair", "--server", server.base_url)
    approving = spawn(logged_in, "pair", link_of(joining))
    sas_of(approving)
    approving.answer("n")
    assert approving.wait() == 3
    assert joining.wait() == 3
    assert "refused" in "\n".join(joining.stderr)
    assert not laptop.config_file.exists()


def test_a_new_terminal_joins_the_code_an_enrolled_browser_shows(server, cli, spawn):
    """Flow A: the browser's "Add a device" shows a code committed to its
    key; `cloudbuffer pair LINK` on a terminal that is not logged in joins."""
    http, account = browser(server)
    shower = e2e_keys.KeyPair()
    shown = http.post("/account/pairings", json={"payload": shower.public_b64u})
    assert shown.status_code == 201, shown.text
    link = shown.json()["url"] + "#k=" + shower.public_b64u
    job = spawn(cli, "pair", link)
    shown_here = sas_of(job).replace(" ", "")
    pairing = wait_for(lambda: (lambda p: p if p.get("request_payload") else None)(
        http.get(f"/account/pairings/{shown.json()['id']}").json()))
    scanner_spki = e2e_keys.unb64u(pairing["request_payload"])
    shared = shower.private.exchange(ec.ECDH(), serialization.load_der_public_key(scanner_spki))
    value = int.from_bytes(e2e_keys.hkdf(shared, shower.spki + scanner_spki, b"cloudbuffer sas v1", 4), "big") >> 12
    assert shown_here == f"{value % 1_000_000:06d}"
    job.answer("y")
    approve(http, account, pairing, scanner_spki, shower)
    assert job.wait() == 0, job.stderr
    item = account.item(b"to the terminal that joined")
    assert http.post("/file/buffer", content=item.body, headers=e2e_keys.headers(item)).status_code == 201
    assert cli.run("paste").stdout == b"to the terminal that joined"


def test_a_code_whose_key_does_not_match_is_refused(server, cli):
    """A link whose #k= is not the key the code commits to (a swapped key)."""
    http, _ = browser(server)
    shown = http.post("/account/pairings", json={"payload": e2e_keys.KeyPair().public_b64u})
    other = e2e_keys.KeyPair().public_b64u
    result = cli.run("pair", shown.json()["url"] + "#k=" + other)
    assert result.returncode == 3 and b"does not match its code" in result.stderr

