"""`cloudbuffer e2e enable | status | recover`: turn end-to-end encryption
on for the account, see its key state, and enroll this computer with the
recovery key when no other device is left (docs/e2e.md)."""
from __future__ import annotations

import argparse
import sys

from . import keys, prompt
from .api import Api
from .config import current_login
from .errors import REFUSED, USAGE, ClientError
from .keystore import Keystore, forget_keystore, keystore_path
from .vault import Vault, attested, enroll, proven_chain, user_id_of


def cmd_e2e(args: argparse.Namespace) -> int:
    return {"enable": enable, "status": status, "recover": recover}[args.e2e_command](args)


def enable(args: argparse.Namespace) -> int:
    login = current_login()
    with Api.for_login(login) as api:
        state = api.json("GET", "/account/e2e")
        if state.get("enabled"):
            raise ClientError(REFUSED, "this account is encrypted already; to give this computer the key, run "
                                       "`cloudbuffer pair` (or `cloudbuffer e2e recover`)")
        device, user_id = state["device"], user_id_of(state, login)
        print("End-to-end encryption: from now on every item is encrypted on your devices before it leaves them,\n"
              "and the server keeps only ciphertext. The buffer's history on the server is DELETED now\n"
              "(plaintext must not stay in an encrypted account). Other devices get the key by pairing\n"
              "(`cloudbuffer pair`, or \"Add a device\" in the app).", file=sys.stderr)
        password = prompt.secret("Password: ")
        if not password:
            raise ClientError(USAGE, "the account's password is needed to turn encryption on")
        if not args.yes and not prompt.confirm("Delete the history and encrypt this buffer?"):
            raise ClientError(REFUSED, "nothing changed")
        account_key = keys.new_account_key()
        device_key, recovery_key, recovery_pair = keys.new_private_key(), keys.new_recovery_key(), keys.new_private_key()
        store = Keystore(url=api.url, device=device, user_id=user_id, device_key=device_key, epochs={1: account_key},
                         recovery_public_key=keys.b64u(keys.spki(recovery_pair)))
        body = {"password": password,
                "recovery": {"public_key": store.recovery_public_key,
                             "sealed_private_key": keys.seal_private_key(recovery_key, recovery_pair)},
                "device": {"public_key": store.public_key,
                           "attest": keys.attest(store.ikm(1), device, store.public_key)},
                "wraps": [{"recipient": "self", "epoch": 1, "blob": keys.wrap(account_key, 1, keys.spki(device_key))},
                          {"recipient": "recovery", "epoch": 1,
                           "blob": keys.wrap(account_key, 1, keys.spki(recovery_pair))}]}
        # Saved before the server hears of it: a crash after it accepted must not lose the only key.
        path = store.save()
        try:
            api.json("POST", "/account/e2e/enable", json=body)
        except ClientError as error:
            forget_keystore()
            if error.code == "wrong_password":
                raise ClientError(REFUSED, "wrong password; nothing changed") from None
            raise
    print(f"Encryption is on. This computer's keys are in {path}.\n"
          "Your RECOVERY KEY is below, shown this once: write it down or print it, and keep it away from\n"
          "your devices. With it, `cloudbuffer e2e recover` (or the app) reads the buffer again if every\n"
          "device is lost; without it and without a device, nobody can, not even the server.", file=sys.stderr)
    print(keys.format_recovery_key(recovery_key), flush=True)
    return 0


def status(args: argparse.Namespace) -> int:
    login = current_login()
    with Api.for_login(login) as api:
        vault = Vault(api)
        state = vault.refresh()
    if not state.get("enabled"):
        print(f"{login.url}: not encrypted (`cloudbuffer e2e enable` turns it on)")
        return 0
    store = vault.store
    print(f"{login.url}: end-to-end encrypted, epoch {state['epoch']}"
          + (" (a device was revoked: the next write rotates the key)" if state.get("rotation_needed") else ""))
    if store is None:
        print("this computer: no key (run `cloudbuffer pair` or `cloudbuffer e2e recover`)")
    else:
        held = ", ".join(str(epoch) for epoch in sorted(store.epochs))
        print(f"this computer: {store.device}, keys of epochs {held} in {keystore_path()}")
    for device in state.get("devices") or []:
        mark = "" if store is None else ("  attested" if attested(store, device) else "  NOT ATTESTED")
        current = "  (this computer)" if device.get("device") == state.get("device") else ""
        print(f"  {device.get('device')}  {device.get('name') or '?'}{mark}{current}")
    return 0


def recover(args: argparse.Namespace) -> int:
    login = current_login()
    typed = prompt.secret("Recovery key: ")
    try:
        recovery_key = keys.parse_recovery_key(typed)
    except keys.KeyMaterialError as error:
        raise ClientError(USAGE, f"{error}; type the 13 groups as written (dashes and case do not matter)") from None
    with Api.for_login(login) as api:
        state = api.json("GET", "/account/e2e")
        if not state.get("enabled"):
            raise ClientError(REFUSED, "this account is not encrypted: there is nothing to recover")
        recovery = state.get("recovery") or {}
        try:
            recovery_pair = keys.unseal_private_key(recovery_key, recovery.get("sealed_private_key") or "")
        except keys.KeyMaterialError as error:
            raise ClientError(REFUSED, f"{error}; check the recovery key") from None
        if keys.b64u(keys.spki(recovery_pair)) != recovery.get("public_key"):
            raise ClientError(REFUSED, "the server's recovery public key does not match its sealed private key; "
                                       "not trusting it")
        epochs = {}
        for wrap in recovery.get("wraps") or []:
            try:
                epochs[wrap["epoch"]] = keys.unwrap(wrap["blob"], wrap["epoch"], recovery_pair)
            except (keys.KeyMaterialError, KeyError, TypeError) as error:
                print(f"cloudbuffer: ignoring a recovery wrap ({error})", file=sys.stderr)
        epochs = proven_chain(epochs, state.get("epochs"), user_id_of(state, login))
        if not epochs:
            raise ClientError(REFUSED, f"{api.url} gave no key wrapped for the recovery key (GET /account/e2e "
                                       "has no recovery wraps); the server must send them for a recovery")
        store = enroll(api, login, state, epochs, recovery["public_key"])
    print(f"this computer is enrolled as {store.device} with the keys of epochs "
          f"{', '.join(map(str, sorted(store.epochs)))}; keys in {keystore_path()}", file=sys.stderr)
    return 0
