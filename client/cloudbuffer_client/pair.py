"""`cloudbuffer pair`: a device joins an account by pairing, and gets the
account key on the way (docs/e2e.md, "Pairing with keys").

- `cloudbuffer pair` on a new terminal (flow B, this terminal shows): a QR
  code and a code to type on a logged-in device; both screens then show a
  verification code, and once the person confirms it here and approves it
  there, this terminal is an API token device holding the key.
- `cloudbuffer pair CODE-OR-URL` on a logged-in, enrolled terminal approves
  the device showing that code (flow B, the scanning side); on a terminal
  that is not logged in, it joins the account whose device shows it (flow A,
  the app's "Add a device").

The code is a commitment to the showing device's public key (its hash), so
the server cannot swap that key; the verification code, derived from both
keys, catches a server that swapped the other one.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from urllib.parse import parse_qs, urljoin, urlsplit

from . import keys, prompt
from .account import token_name
from .api import Api
from .config import Login, current_login, read_file, save_login, saved_url
from .errors import EMPTY, REFUSED, USAGE, ClientError
from .keystore import forget_keystore, keystore_path
from .share import qr_text
from .vault import Vault, enroll

POLL_SECONDS = 1.0


def cmd_pair(args: argparse.Namespace) -> int:
    if args.code is None:
        return show_and_join(args)
    code, fragment_key, path = parse_target(args.code)
    server = args.server or (origin_of(args.code) if path is not None else None)
    if path == "/pair" or (path is None and not _logged_in()):
        return scan_and_join(code, fragment_key, server or saved_url())
    return approve(code, fragment_key)


# --- parsing what the person gives ------------------------------------------

def parse_target(text: str) -> tuple[str, bytes | None, str | None]:
    """(code, the shower's SPKI from `#k=` if present, the URL's path or None for a bare code)."""
    text = text.strip()
    if "://" not in text:
        return _code(text), None, None
    parts = urlsplit(text)
    code = (parse_qs(parts.query).get("code") or [""])[0]
    fragment_key = None
    for piece in parts.fragment.split("&"):
        name, _, value = piece.partition("=")
        if name == "k" and value:
            try:
                fragment_key = keys.unb64u(value)
            except keys.KeyMaterialError:
                raise ClientError(USAGE, "the link's key (#k=…) is damaged; copy the whole link, or type the code") from None
    return _code(code), fragment_key, parts.path.rstrip("/")


def origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}"


def _code(text: str) -> str:
    code = keys.normalize_crockford(text)
    if len(code) != 10 or any(char not in keys.CROCKFORD for char in code):
        raise ClientError(USAGE, f"{text!r} is not a pairing code (10 letters and digits, like ABCDE-FGHJK) "
                                 "nor a pairing link")
    return code


def _logged_in() -> bool:
    try:
        current_login()
    except ClientError:
        return False
    return True


def check_commitment(code: str, shower_spki: bytes) -> None:
    if keys.pairing_code(shower_spki) != code:
        raise ClientError(REFUSED, "the showing device's key does not match its code: someone (the server?) "
                                   "swapped it; pairing stopped")


def shower_key(api: Api, code: str, fragment_key: bytes | None) -> bytes:
    """The showing device's SPKI, from the link's fragment or from the server, checked against the code."""
    if fragment_key is None:
        answer = api.json("GET", "/pair/payload", params={"code": code},
                          not_found="that code is not valid (expired, used, or mistyped); ask for a new one")
        try:
            fragment_key = keys.unb64u(answer.get("payload") or "")
        except keys.KeyMaterialError:
            raise ClientError(REFUSED, "the server gave no usable key for that code") from None
    check_commitment(code, fragment_key)
    try:
        keys.load_spki(fragment_key)
    except keys.KeyMaterialError as error:
        raise ClientError(REFUSED, f"the showing device's key is not usable ({error})") from None
    return fragment_key


def show_sas(shared: bytes, shower_spki: bytes, scanner_spki: bytes, other: str) -> bool:
    code = keys.display_sas(keys.sas(shared, shower_spki, scanner_spki))
    print(f"\nVerification code:  {code}\n", file=sys.stderr)
    return prompt.confirm(f"Does {other} show the same verification code?")


# --- the scanning, enrolled side ----------------------------------------------

def approve(code: str, fragment_key: bytes | None) -> int:
    login = current_login()
    with Api.for_login(login) as api:
        vault = Vault(api)
        state = vault.refresh()
        encrypted = bool(state.get("enabled"))
        if encrypted and not vault.enrolled:
            raise ClientError(REFUSED, "this account is end-to-end encrypted and this computer has no key to give; "
                                       "approve the new device from one that has it")
        if encrypted:
            vault.for_write()  # a rotation that is due happens first, so the new device gets the current key
        shower_spki = shower_key(api, code, fragment_key)
        ephemeral = keys.new_private_key()
        own_spki = keys.spki(ephemeral)
        try:
            pairing = api.json("POST", "/account/pairings/claim", json={"code": code, "payload": keys.b64u(own_spki)},
                               not_found="that code is not valid (expired, used, or mistyped); ask for a new one")
        except ClientError as error:
            if error.code == "session_required":
                raise ClientError(REFUSED, f"{api.url} lets only a browser session approve a new device, not an "
                                           "API token like this terminal's; open /account/pair in the app and type "
                                           "the code there") from None
            raise
        if pairing.get("request_payload") != keys.b64u(shower_spki):
            _refuse(api, pairing)
            raise ClientError(REFUSED, "the server's key for the new device is not the one its code commits to; "
                                       "pairing refused")
        name = pairing.get("device_name") or "the new device"
        print(f"{name!r} asks to join this account.", file=sys.stderr)
        shared = keys.ecdh(ephemeral, keys.load_spki(shower_spki))
        if not show_sas(shared, shower_spki, own_spki, repr(name)):
            _refuse(api, pairing)
            raise ClientError(REFUSED, "the codes differ: pairing refused (someone may be in the middle; try again)")
        payload = None
        if encrypted:
            store = vault.store
            # Wrapped with the key the verification code was computed over: the new device checks it.
            payload = json.dumps({"wraps": [{"epoch": epoch, "blob": keys.wrap(key, epoch, shower_spki, ephemeral)}
                                            for epoch, key in sorted(store.epochs.items())]})
        api.json("POST", f"/account/pairings/{pairing['id']}/approve", json={"payload": payload} if payload else {})
    print(f"approved: {name!r} joins" + (" with the key" if encrypted else ""), file=sys.stderr)
    return 0


def _refuse(api: Api, pairing: dict) -> None:
    try:
        api.json("POST", f"/account/pairings/{pairing['id']}/refuse")
    except ClientError:
        pass  # expired meanwhile: refused all the same


# --- the new device's side -----------------------------------------------------

def _server_for_new_device(url: str | None) -> str:
    if not url:
        raise ClientError(USAGE, "which server? run `cloudbuffer pair --server https://your-server`")
    return url.rstrip("/")


def show_and_join(args: argparse.Namespace) -> int:
    """Flow B: this terminal shows, a logged-in device scans and approves."""
    url = _server_for_new_device(args.server or saved_url())
    ephemeral = keys.new_private_key()
    own_spki = keys.spki(ephemeral)
    with Api(url) as api:
        request = api.json("POST", "/pair/requests", json={"device_name": token_name(), "payload": keys.b64u(own_spki)})
        code = keys.normalize_crockford(request["code"])
        check_commitment(code, own_spki)  # the server derived it from our key; a mismatch would pair nothing
        link = urljoin(url + "/", request["url"]) + "#k=" + keys.b64u(own_spki)
        sys.stderr.write(qr_text(link))
        print(f"\nOn a device logged in to {url}, scan this QR code, or open {url}/account/pair and type\n\n"
              f"    {code[:5]}-{code[5:]}\n\nor run `cloudbuffer pair {link}` on a computer that is logged in. "
              "The code works for 2 minutes.", file=sys.stderr, flush=True)
        claim = {"X-Pairing-Claim": request["claim"]}
        status = _wait(api, claim, lambda s: s.get("offer_payload") or s["status"] in ("approved", "refused"))
        if status["status"] == "refused":
            raise ClientError(REFUSED, "the other device refused the pairing")
        try:
            offer = keys.unb64u(status.get("offer_payload") or "")
            shared = keys.ecdh(ephemeral, keys.load_spki(offer))
        except keys.KeyMaterialError:
            # Without the other device's key there is no verification code to compare: nothing to trust.
            raise ClientError(REFUSED, "the other device sent no usable key, so there is no verification code "
                                       "to compare; pairing stopped (update the app on that device)") from None
        if not show_sas(shared, own_spki, offer, "the other device"):
            raise ClientError(REFUSED, "the codes differ: pairing stopped here (refuse it on the other device too)")
        print("waiting for the other device to approve…", file=sys.stderr, flush=True)
        _wait(api, claim, lambda s: s["status"] in ("approved", "refused"), refused_ends=True)
        done = api.json("POST", "/pair/complete", headers=claim, json={"as": "token"})
    return _keep(url, done, ephemeral, offer)


def scan_and_join(code: str, fragment_key: bytes | None, url: str | None) -> int:
    """Flow A: a logged-in device shows (the app's "Add a device"), this terminal joins."""
    url = _server_for_new_device(url)
    with Api(url) as api:
        shower_spki = shower_key(api, code, fragment_key)
        ephemeral = keys.new_private_key()
        own_spki = keys.spki(ephemeral)
        claimed = api.json("POST", "/pair", json={"code": code, "device_name": token_name(),
                                                  "payload": keys.b64u(own_spki)},
                           not_found="that code is not valid (expired, used, or mistyped); ask for a new one")
        claim = {"X-Pairing-Claim": claimed["claim"]}
        shared = keys.ecdh(ephemeral, keys.load_spki(shower_spki))
        if not show_sas(shared, shower_spki, own_spki, "the other device"):
            raise ClientError(REFUSED, "the codes differ: pairing stopped here (refuse it on the other device too)")
        print("waiting for the other device to approve…", file=sys.stderr, flush=True)
        _wait(api, claim, lambda s: s["status"] in ("approved", "refused"), refused_ends=True)
        done = api.json("POST", "/pair/complete", headers=claim, json={"as": "token"})
    return _keep(url, done, ephemeral, shower_spki)


def _wait(api: Api, claim: dict, until, refused_ends: bool = False) -> dict:
    while True:
        status = api.json("GET", "/pair/status", headers=claim,
                          not_found="the pairing expired or was taken; run `cloudbuffer pair` again")
        if refused_ends and status["status"] == "refused":
            raise ClientError(REFUSED, "the other device refused the pairing")
        if until(status):
            return status
        if status.get("expires_at") and time.time() > status["expires_at"] + 5:
            raise ClientError(EMPTY, "the pairing expired; run `cloudbuffer pair` again")
        time.sleep(POLL_SECONDS)


def _keep(url: str, done: dict, ephemeral, approver_spki: bytes) -> int:
    """Save the new token and, for an encrypted account, the keys it was
    given, if they were wrapped by the key the verification code covered."""
    device = done.get("device") or {}
    if not done.get("token"):
        raise ClientError(REFUSED, "the server did not make this terminal an API token")
    epochs: dict[int, bytes] = {}
    if done.get("payload"):
        try:
            for wrap in json.loads(done["payload"]).get("wraps") or []:
                if keys.wrap_sender(wrap["blob"]) != approver_spki:
                    raise keys.KeyMaterialError("a wrap was not made by the device whose code you confirmed")
                epochs[wrap["epoch"]] = keys.unwrap(wrap["blob"], wrap["epoch"], ephemeral)
        except (ValueError, AttributeError, KeyError, TypeError, keys.KeyMaterialError) as error:
            _drop_token(url, done["token"], device.get("id"))
            raise ClientError(REFUSED, f"the keys the other device sent are refused ({error}); "
                                       "nothing was kept") from None
    user_id = done.get("id") if isinstance(done.get("id"), int) else None
    login = Login(url=url, token=done["token"], token_id=device.get("id"), user_id=user_id)
    if read_file().get("token") != login.token:
        forget_keystore()
    save_login(login)
    with Api.for_login(login) as api:
        state = api.json("GET", "/account/e2e")
        if state.get("enabled"):
            if not epochs:
                raise ClientError(REFUSED, "this account is encrypted but the other device sent no key; "
                                           "pair again from a device that has it")
            enroll(api, login, state, epochs, (state.get("recovery") or {}).get("public_key"))
    print(f"paired: this terminal is {device.get('name')!r} of {done.get('username')} on {url}"
          + (f"; keys in {keystore_path()}" if epochs else ""), file=sys.stderr)
    return 0


def _drop_token(url: str, token: str, token_id) -> None:
    """Revoke the token a refused pairing made, so it is not left behind."""
    try:
        with Api(url, token) as api:
            api.json("DELETE", f"/account/tokens/{token_id}")
    except ClientError:
        pass  # it stays listed on the profile page, where it can be revoked
