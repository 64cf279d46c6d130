"""The command-line client and the app paired with each other, both real:
`cloudbuffer` as a subprocess (its own config dir) and the PWA in Chromium,
against the same `cloudbuffer serve` (docs/e2e.md, "Pairing with keys").

- Flow B: `cloudbuffer pair --server URL` shows a QR link to
  /account/pair?code=…#k=…; the enrolled browser opens it, checks the key
  against the code, takes the request with a key of its own, and both show
  the same verification code; once both sides say so the terminal holds the
  account key, and they read each other's texts and files.
- Flow A: the browser's "Add a device" link given to `cloudbuffer pair LINK`.
- Revoking the terminal from the browser rotates the key: what the browser
  posts next is not readable with the keys the terminal held.
- "They differ: refuse" in the browser makes the terminal stop, saying so.
- A plaintext account takes a typed code too, without keys to hand out."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.client.conftest import Background, Cli, make_cli
from tests.live_server import cloudbuffer_executable

from . import e2e_reference as ref
from .conftest import PASSWORD, PHONE, items, open_app, register, wait_for
from .test_e2e_enable import enable
from .test_e2e_pairing import READ_KEYS, show_code

LINK = re.compile(r"`cloudbuffer pair (\S+)`")
SAS = re.compile(r"^[0-9]{3} [0-9]{3}$")


@pytest.fixture
def terminal(tmp_path):
    """A computer with `cloudbuffer` and no login yet: (cli, spawn), where
    spawn(*args) starts a command whose questions `job.answer(...)` answers."""
    cli = make_cli(tmp_path / "terminal")
    started: list[Background] = []

    def spawn(*args: str) -> Background:
        process = subprocess.Popen([cloudbuffer_executable(), *args], cwd=cli.cwd, env=cli.env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(Background(process))
        return started[-1]

    yield cli, spawn
    for job in started:
        job.stop()


def link_of(job: Background) -> str:
    job.wait_for_stderr("cloudbuffer pair http")
    return LINK.search(job.line_with("cloudbuffer pair http")).group(1)


def sas_of(job: Background) -> str:
    job.wait_for_stderr("Verification code:")
    return job.line_with("Verification code:").split(":", 1)[1].strip()


def finished(job: Background) -> tuple[int, str]:
    code = job.wait()
    return code, "\n".join(job.stderr)


def cli_pairs_by_showing(browser: BrowserContext, spawn, server) -> tuple[Page, str]:
    """Flow B: `cloudbuffer pair --server` shows, the browser opens its QR
    link and allows it once both verification codes match."""
    job = spawn("pair", "--server", server.base_url)
    link = link_of(job)
    match = re.fullmatch(re.escape(server.base_url) + r"/account/pair\?code=([0-9A-Z]{10})#k=([A-Za-z0-9_-]+)", link)
    assert match, link
    assert match.group(1) == ref.pairing_code(ref.unb64u(match.group(2)))  # the code commits to the terminal's key
    page = browser.new_page()
    page.goto(link)
    expect(page.locator("#pair-sas")).to_have_text(SAS)
    assert page.locator("#pair-sas").inner_text() == sas_of(job)
    expect(page.locator("#pair-device")).to_have_text(re.compile(r"^cloudbuffer on "))
    assert page.evaluate("() => document.activeElement.id") == "pair-approve"
    job.answer("y")
    page.get_by_role("button", name="The codes match: allow").click()
    expect(page.locator("#pair-status")).to_have_text(re.compile(r"^cloudbuffer on .* may now join your account\.$"))
    code, stderr = finished(job)
    assert code == 0, stderr
    assert "paired: this terminal is" in stderr and "keys in" in stderr, stderr
    return page, match.group(1)


def send_text(app: Page, text: str) -> None:
    app.fill("#send-text", text)
    app.get_by_role("button", name="Send").first.click()
    expect(app.locator("#current-text")).to_have_text(text)


def paste(cli: Cli) -> str:
    result = cli.run("paste")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def exchange_both_ways(browser: BrowserContext, cli: Cli, tmp_path, label: str) -> None:
    """The browser's text and file reach the terminal, the terminal's text the browser, live."""
    app = open_app(browser)
    send_text(app, f"from the browser ({label}): the door code is 4711")
    wait_for(app, "(n) => fetch('/file/buffer/items').then((r) => r.json()).then((b) => b.items.length >= n)", 1)
    assert paste(cli) == f"from the browser ({label}): the door code is 4711"

    data = os.urandom(3 * (ref.RS - 17) + 999)  # four records, the last one short
    path = tmp_path / f"{label}-scan.pdf"
    path.write_bytes(data)
    before = len(items(browser))
    app.set_input_files("#file-input", str(path))
    expect(app.locator("#current-filename")).to_have_text(path.name)
    wait_for(app, "(n) => fetch('/file/buffer/items').then((r) => r.json()).then((b) => b.items.length > n)", before)
    out = tmp_path / f"{label}-pasted"
    out.mkdir()
    result = cli.run("paste", "-o", f"{out}/")
    assert result.returncode == 0, result.stderr.decode()
    assert hashlib.sha256((out / path.name).read_bytes()).digest() == hashlib.sha256(data).digest()

    result = cli.run("copy", input=f"from the terminal ({label}): milk")
    assert result.returncode == 0, result.stderr.decode()
    expect(app.locator("#current-text")).to_have_text(f"from the terminal ({label}): milk")
    # What the server holds is ciphertext, whoever wrote it.
    listed = items(browser)
    assert listed and all(item.get("encrypted") == "aes128gcm" for item in listed)


def test_the_browser_takes_the_code_cloudbuffer_pair_shows_and_they_read_each_others_items(
        new_context, username, server, terminal, tmp_path):
    laptop = new_context(accept_downloads=True)
    register(laptop, username, "Laptop")
    enable(laptop)
    cli, spawn = terminal
    cli_pairs_by_showing(laptop, spawn, server)

    # The terminal registered a device key of its own, which the browser can attest.
    state = laptop.request.get("/account/e2e").json()
    assert sorted(device["device"].split(":")[0] for device in state["devices"]) == ["session", "token"]
    store = json.loads((cli.home / "cloudbuffer" / "e2e.json").read_text())
    assert list(store["epochs"]) == ["1"]
    exchange_both_ways(laptop, cli, tmp_path, "flow B")


def test_cloudbuffer_pair_joins_with_the_link_the_browsers_add_a_device_shows(
        new_context, username, server, terminal, tmp_path):
    laptop = new_context(accept_downloads=True)
    register(laptop, username, "Laptop")
    enable(laptop)
    page, link = show_code(laptop)
    assert re.fullmatch(re.escape(server.base_url) + r"/pair\?code=[0-9A-Z]{10}#k=[A-Za-z0-9_-]+", link), link
    cli, spawn = terminal
    job = spawn("pair", link)
    cli_sas = sas_of(job)
    expect(page.locator("#pair-sas")).to_have_text(cli_sas)
    job.answer("y")
    page.get_by_role("button", name="The codes match: allow").click()
    expect(page.locator("#pair-status")).to_have_text(re.compile(r"is now logged in to your account\.$"))
    code, stderr = finished(job)
    # The terminal keeps the keys only as the wraps were made with the key the code covered.
    assert code == 0, stderr
    assert "keys in" in stderr, stderr
    exchange_both_ways(laptop, cli, tmp_path, "flow A")


def test_a_revoked_terminal_cannot_read_what_the_browser_posts_after_the_revoke(
        new_context, username, server, terminal):
    laptop = new_context()
    account = register(laptop, username, "Laptop")
    enable(laptop)
    cli, spawn = terminal
    cli_pairs_by_showing(laptop, spawn, server)
    app = open_app(laptop)
    send_text(app, "before the revoke")
    wait_for(app, "() => fetch('/file/buffer/items').then((r) => r.json()).then((b) => b.items.length === 1)")
    assert paste(cli) == "before the revoke"
    held = {int(epoch): ref.unb64u(key)
            for epoch, key in json.loads((cli.home / "cloudbuffer" / "e2e.json").read_text())["epochs"].items()}
    assert list(held) == [1]

    profile = laptop.new_page()
    profile.goto("/account/profile")
    profile.get_by_role("button", name=re.compile(r"^Revoke token cloudbuffer on ")).click()
    expect(profile.get_by_role("button", name=re.compile(r"^Revoke token "))).to_have_count(0)
    # The open app sees the `e2e` message and rotates: epoch 2, wrapped to the browser and the recovery key only.
    wait_for(app, """async () => {
        const state = await (await fetch("/account/e2e")).json();
        return state.epoch === 2 && !state.rotation_needed;
    }""")
    state = laptop.request.get("/account/e2e").json()
    assert [device["device"].split(":")[0] for device in state["devices"]] == ["session"]
    send_text(app, "after the revoke")

    # The terminal's paste fails, plainly ...
    result = cli.run("paste")
    assert result.returncode == 3, result
    assert b"not logged in" in result.stderr and b"after the revoke" not in result.stdout
    # ... and the keys it held open the item from before, not the one from after.
    listed = items(laptop)
    new, old = listed[0], listed[-1]
    assert ref.keyid(ref.unb64u(new["key"])) == "2" and ref.keyid(ref.unb64u(old["key"])) == "1"
    ikm1 = ref.items_ikm(held[1], account["id"])
    assert json.loads(ref.decrypt(ikm1, ref.unb64u(old["key"])))["v"] == 1
    with pytest.raises(Exception):  # http_ece's InvalidTag or ECEException: the epoch-1 key does not open it
        ref.decrypt(ikm1, ref.unb64u(new["key"]))


def test_they_differ_refuse_in_the_browser_stops_cloudbuffer_pair_which_keeps_nothing(
        new_context, username, server, terminal):
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    cli, spawn = terminal
    job = spawn("pair", "--server", server.base_url)
    page = laptop.new_page()
    page.goto(link_of(job))
    expect(page.locator("#pair-sas")).to_have_text(SAS)
    sas_of(job)
    page.get_by_role("button", name="They differ: refuse").click()
    expect(page.locator("#pair-status")).to_have_text(re.compile(r"^cloudbuffer on .* was refused\.$"))
    job.answer("y")  # the person at the terminal said yes: the browser's "no" still ends it
    code, stderr = finished(job)
    assert code == 3, stderr
    assert "the other device refused the pairing" in stderr, stderr
    assert not cli.config_file.exists() and not (cli.home / "cloudbuffer" / "e2e.json").exists()
    assert laptop.request.get("/account/profile").json()["tokens"] == []


def test_a_link_whose_key_is_not_the_codes_is_refused_before_the_browser_takes_it(
        new_context, username, server, terminal):
    laptop = new_context()
    register(laptop, username, "Laptop")
    enable(laptop)
    _, spawn = terminal
    job = spawn("pair", "--server", server.base_url)
    link = link_of(job)
    other = ref.spki(ref.ec.generate_private_key(ref.ec.SECP256R1()).public_key())
    page = laptop.new_page()
    claims: list[str] = []
    page.on("request", lambda request: request.method == "POST" and "/account/pairings" in request.url
            and claims.append(request.url))
    page.goto(link.split("#k=")[0] + "#k=" + ref.b64u(other))
    expect(page.locator("#pair-take-error")).to_contain_text("does not match its code")
    assert page.evaluate("() => document.activeElement.id") == "pair-take-code"
    assert page.locator("#pair-take-code").get_attribute("aria-describedby") == "pair-take-error"
    expect(page.locator("#pair-request")).to_be_hidden()
    assert claims == []
    assert page.url == server.base_url + "/account/pair"  # the code left the address: a reload does not retry


def test_a_plaintext_account_takes_a_typed_code_and_allows_without_keys(
        new_context, username, server, terminal):
    laptop = new_context()
    register(laptop, username, "Laptop")
    cli, spawn = terminal
    job = spawn("pair", "--server", server.base_url)
    job.wait_for_stderr("and type")
    typed = next(line.strip() for line in job.stderr if re.fullmatch(r"\s+[0-9A-Z]{5}-[0-9A-Z]{5}", line))
    page = laptop.new_page()
    page.goto("/account/pair")
    page.get_by_label("Code the new device shows").fill(typed.lower())  # typed as a person may
    page.get_by_role("button", name="Check the code").click()
    # No link, so no key in a fragment: the server's key for the code was checked against it.
    expect(page.locator("#pair-sas")).to_have_text(SAS)
    assert page.locator("#pair-sas").inner_text() == sas_of(job)
    job.answer("y")
    page.get_by_role("button", name="The codes match: allow").click()
    expect(page.locator("#pair-status")).to_have_text(re.compile(r"may now join your account\.$"))
    code, stderr = finished(job)
    assert code == 0, stderr
    assert not (cli.home / "cloudbuffer" / "e2e.json").exists()
    result = cli.run("copy", input="plain from the terminal")
    assert result.returncode == 0, result.stderr.decode()
    assert items(laptop)[0]["type"] == "text" and "encrypted" not in items(laptop)[0]
    assert paste(cli) == "plain from the terminal"


def test_a_qr_link_opened_logged_out_is_taken_after_logging_in_and_the_wraps_are_the_exchanges(
        new_context, username, server):
    """The phone that scans a terminal's QR code is logged out: it logs in and
    comes back to the code. Here the new device is played in Python with
    tests/browser/e2e_reference.py (an implementation independent of the
    app's): its verification code equals the browser's, and the approval's
    wrap opens with its key and was made with the browser's pairing key."""
    laptop = new_context()
    account = register(laptop, username)
    enable(laptop)
    [keys] = laptop.pages[0].evaluate(READ_KEYS)
    own = ref.ec.generate_private_key(ref.ec.SECP256R1())
    own_spki = ref.spki(own.public_key())
    opened = httpx.post(server.base_url + "/pair/requests", json={"device_name": "Terminal", "payload": ref.b64u(own_spki)},
                        timeout=10)
    assert opened.status_code == 201, opened.text
    claim = {"X-Pairing-Claim": opened.json()["claim"]}

    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.goto(opened.json()["url"])  # no fragment: the server's key for the code is checked against it
    page.wait_for_url("**/account/login?next=**")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # This phone has no key of the encrypted account: it says so and takes nothing.
    expect(page.locator("#pair-take-error")).to_contain_text("does not have its key to give")
    assert httpx.get(server.base_url + "/pair/status", headers=claim, timeout=10).json()["status"] == "open"

    page = laptop.new_page()
    page.goto(opened.json()["url"])
    expect(page.locator("#pair-sas")).to_have_text(SAS)
    status = httpx.get(server.base_url + "/pair/status", headers=claim, timeout=10).json()
    assert status["status"] == "claimed"
    offer = ref.unb64u(status["offer_payload"])
    assert page.locator("#pair-sas").inner_text() == ref.sas(own, offer, own_spki, offer)
    page.get_by_role("button", name="The codes match: allow").click()
    expect(page.locator("#pair-status")).to_have_text("Terminal may now join your account.")
    done = httpx.post(server.base_url + "/pair/complete", headers=claim, json={"as": "token"}, timeout=10)
    assert done.status_code == 200, done.text
    [wrap] = json.loads(done.json()["payload"])["wraps"]
    assert wrap["epoch"] == 1 and ref.unb64u(wrap["blob"].split(".")[0]) == offer  # made with the pairing key
    assert ref.unwrap(wrap["blob"], 1, own) == base64.b64decode(keys["1"])
    assert done.json()["id"] == account["id"]


def test_a_code_no_device_shows_is_said_so_at_the_field(new_context, username, problems):
    laptop = new_context()
    register(laptop, username)
    enable(laptop)
    problems.allow(r"404.*/pair/payload\?code=ABCDEFGHJK")
    page = laptop.new_page()
    page.goto("/account/pair")
    page.get_by_label("Code the new device shows").fill("ABCDE-FGHJK")
    page.get_by_label("Code the new device shows").press("Enter")
    expect(page.locator("#pair-take-error")).to_contain_text("That code is not valid")
    assert page.evaluate("() => document.activeElement.id") == "pair-take-code"
    expect(page.locator("#pair-request")).to_be_hidden()
    expect(page.locator("#pair-status")).to_have_text("")
