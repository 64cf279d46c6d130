"""The account's key state as this device sees it: GET /account/e2e, the
keys of every epoch this device holds, and rotation when the account asks
for it (after a device was revoked, before anything new is posted)."""
from __future__ import annotations

import hmac
import sys

from . import keys
from .api import Api
from .config import Login
from .errors import REFUSED, ClientError
from .keystore import Keystore, load_keystore

NO_KEY = ("this computer has no key for epoch {epoch} of the encrypted buffer: it was revoked, or never "
          "enrolled; run `cloudbuffer pair` or `cloudbuffer e2e recover`")


def user_id_of(state: dict, login: Login) -> int:
    """The account's id, which IKM_e binds the items to: GET /account/e2e's
    `user_id` if the server says it there, else what the login answered."""
    user_id = state.get("user_id", login.user_id)
    if not isinstance(user_id, int):
        raise ClientError(REFUSED, "this login does not know the account's id, which its encryption keys are "
                                   "bound to: log in again with `cloudbuffer login URL` (a password login says it)")
    return user_id


def absorb_wraps(store: Keystore, wraps: list[dict], proofs: list[dict] | None) -> bool:
    """Unwrap the keys addressed to this device that it does not hold yet.
    A new epoch's key is taken only with a proof made under the key of the
    epoch before (docs/e2e.md): a wrap alone could come from the server."""
    proof_of = {entry.get("epoch"): entry.get("proof") for entry in proofs or [] if isinstance(entry, dict)}
    changed = False
    for wrap in sorted((w for w in wraps or [] if isinstance(w, dict) and isinstance(w.get("epoch"), int)),
                       key=lambda w: w["epoch"]):
        epoch = wrap["epoch"]
        if epoch in store.epochs:
            continue
        try:
            account_key = keys.unwrap(wrap.get("blob"), epoch, store.device_key)
        except keys.KeyMaterialError as error:
            print(f"cloudbuffer: ignoring the wrap of epoch {epoch}: {error}", file=sys.stderr)
            continue
        previous = store.ikm(epoch - 1)
        if previous is None or not hmac.compare_digest(keys.epoch_proof(previous, epoch, account_key),
                                                       str(proof_of.get(epoch) or "")):
            print(f"cloudbuffer: refusing the key of epoch {epoch}: no proof that a device holding the key of "
                  f"epoch {epoch - 1} made it", file=sys.stderr)
            continue
        store.epochs[epoch] = account_key
        changed = True
    return changed


def proven_chain(epochs: dict[int, bytes], proofs: list[dict] | None, user_id: int) -> dict[int, bytes]:
    """The keys from epoch 1 on that each carry a proof under the one before."""
    proof_of = {entry.get("epoch"): str(entry.get("proof") or "") for entry in proofs or [] if isinstance(entry, dict)}
    kept: dict[int, bytes] = {}
    for epoch in sorted(epochs):
        if epoch == 1 or (epoch - 1 in kept and hmac.compare_digest(
                keys.epoch_proof(keys.items_ikm(kept[epoch - 1], user_id), epoch, epochs[epoch]),
                proof_of.get(epoch, ""))):
            kept[epoch] = epochs[epoch]
        else:
            break
    return kept


def attested(store: Keystore, device: dict) -> bool:
    """Whether a holder of some epoch's key registered this device key."""
    name, public_key, attestation = device.get("device"), device.get("public_key"), device.get("attest")
    if not all(isinstance(value, str) for value in (name, public_key, attestation)):
        return False
    return any(keys.check_attest(store.ikm(epoch), name, public_key, attestation) for epoch in store.epochs)


class Vault:
    """One login's keys. `store` is None when this computer has none (a
    plaintext account, or an encrypted one this device has not joined)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = load_keystore(api.url)

    @property
    def enrolled(self) -> bool:
        return self.store is not None

    def state(self) -> dict:
        return self.api.json("GET", "/account/e2e")

    def refresh(self, state: dict | None = None) -> dict:
        state = state if state is not None else self.state()
        if self.store is not None and absorb_wraps(self.store, state.get("wraps"), state.get("epochs")):
            self.store.save()
        return state

    def ikm(self, epoch: int) -> bytes | None:
        """IKM_e, fetching this device's wraps once if the epoch is new to it."""
        if self.store is None:
            return None
        if epoch not in self.store.epochs:
            self.refresh()
        return self.store.ikm(epoch)

    def for_write(self) -> tuple[int, bytes] | None:
        """(epoch, IKM_e) to seal a new item with, rotating first if the
        account asks; None when this computer holds no keys (the write goes
        in plaintext, and an encrypted account refuses it with 409)."""
        if self.store is None:
            return None
        state = self.refresh()
        if not state.get("enabled"):
            raise ClientError(REFUSED, f"{self.api.url} says this account is not encrypted, but this computer "
                                       "holds keys for it; ask the server's operator")
        if state.get("rotation_needed"):
            state = self.rotate(state)
        epoch = state["epoch"]
        ikm = self.store.ikm(epoch)
        if ikm is None:
            raise ClientError(REFUSED, NO_KEY.format(epoch=epoch))
        return epoch, ikm

    def rotate(self, state: dict) -> dict:
        """A new account key for the next epoch, wrapped to every registered
        device that an enrolled device attested, and to the recovery key as
        this device first saw it. Another device rotating first is fine."""
        store = self.store
        epoch = state["epoch"]
        if store.ikm(epoch) is None:
            raise ClientError(REFUSED, NO_KEY.format(epoch=epoch))
        recovery = (state.get("recovery") or {}).get("public_key")
        if store.recovery_public_key and recovery != store.recovery_public_key:
            raise ClientError(REFUSED, "the server's recovery key is not the one this computer saw when it joined; "
                                       "not rotating (the new key would be readable by whoever holds that one)")
        account_key = keys.new_account_key()
        wraps = [{"recipient": "recovery", "blob": keys.wrap(account_key, epoch + 1, keys.unb64u(recovery))}]
        for device in state.get("devices") or []:
            if not attested(store, device):
                raise ClientError(REFUSED, f"the device {device.get('device')} ({device.get('name')}) has a key "
                                           "no enrolled device registered; not rotating; revoke it on the profile page")
            wraps.append({"recipient": device["device"],
                          "blob": keys.wrap(account_key, epoch + 1, keys.unb64u(device["public_key"]))})
        try:
            self.api.json("POST", "/account/e2e/epochs", json={
                "epoch": epoch + 1, "proof": keys.epoch_proof(store.ikm(epoch), epoch + 1, account_key),
                "wraps": wraps})
        except ClientError as error:
            if error.code != "stale_key":
                raise
            return self.refresh()  # another device rotated first: take its key
        store.epochs[epoch + 1] = account_key
        store.save()
        print(f"cloudbuffer: rotated the account key to epoch {epoch + 1} (a device was revoked)", file=sys.stderr)
        return self.refresh()

    def replayed(self, item_id: str | None, seq) -> bool:
        """Whether this item's id was seen under another seq (the server
        showing an old item as new); remembers it otherwise."""
        if self.store is None or not item_id or not isinstance(seq, int):
            return False
        known = self.store.seen.get(item_id)
        if known is not None:
            return known != seq
        self.store.seen[item_id] = seq
        self._seen_changed = True
        return False

    def save_seen(self) -> None:
        if self.store is not None and getattr(self, "_seen_changed", False):
            self.store.save()
            self._seen_changed = False


def enroll(api: Api, login: Login, state: dict, epochs: dict[int, bytes], recovery_public_key: str | None) -> Keystore:
    """Make this computer a device of the encrypted account: a long-lived
    key pair, registered with an attestation under the current epoch's key
    and with its own wraps of every epoch's key, so the server can give
    them back to this device alone."""
    store = Keystore(url=api.url, device=state["device"], user_id=user_id_of(state, login),
                     device_key=keys.new_private_key(), epochs=dict(epochs),
                     recovery_public_key=recovery_public_key)
    current = state["epoch"]
    if store.ikm(current) is None:
        raise ClientError(REFUSED, f"the keys received stop before the account's epoch {current}; pair again")
    own_spki = keys.spki(store.device_key)
    api.json("PUT", "/account/e2e/device", json={
        "public_key": store.public_key,
        "attest": keys.attest(store.ikm(current), store.device, store.public_key),
        "wraps": [{"epoch": epoch, "blob": keys.wrap(key, epoch, own_spki)} for epoch, key in sorted(epochs.items())
                  if epoch <= current]})
    store.save()
    return store
