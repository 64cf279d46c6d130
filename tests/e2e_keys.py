"""A device's side of docs/e2e.md, for tests: real keys, real wraps, real
aes128gcm blobs. Blobs are made by `http_ece` (an implementation of RFC 8188
independent of ours and of the clients'), the rest with `cryptography`.
Nothing here imports the server."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RS = 65536


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class KeyPair:
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def spki(self) -> bytes:
        return spki(self.private.public_key())

    @property
    def public_b64u(self) -> str:
        return b64u(self.spki)


def wrap(account_key: bytes, epoch: int, recipient_spki_b64u: str) -> str:
    recipient = serialization.load_der_public_key(unb64u(recipient_spki_b64u))
    ephemeral = KeyPair()
    shared = ephemeral.private.exchange(ec.ECDH(), recipient)
    w = hkdf(shared, ephemeral.spki + unb64u(recipient_spki_b64u), b"cloudbuffer wrap v1")
    nonce = os.urandom(12)
    sealed = AESGCM(w).encrypt(nonce, account_key, f"cloudbuffer wrap v1 epoch {epoch}".encode())
    return ".".join((b64u(ephemeral.spki), b64u(nonce), b64u(sealed)))


def unwrap(blob: str, epoch: int, recipient: KeyPair) -> bytes:
    ephemeral_b64u, nonce, sealed = blob.split(".")
    ephemeral = serialization.load_der_public_key(unb64u(ephemeral_b64u))
    shared = recipient.private.exchange(ec.ECDH(), ephemeral)
    w = hkdf(shared, unb64u(ephemeral_b64u) + recipient.spki, b"cloudbuffer wrap v1")
    return AESGCM(w).decrypt(unb64u(nonce), unb64u(sealed), f"cloudbuffer wrap v1 epoch {epoch}".encode())


def ikm(account_key: bytes, user_id: int) -> bytes:
    return hkdf(account_key, b"cloudbuffer-e2e-v1", b"items user " + str(user_id).encode())


def attest(account_key: bytes, user_id: int, device: str, public_key_b64u: str) -> str:
    message = f"device {device} {public_key_b64u}".encode()
    return b64u(hmac.new(ikm(account_key, user_id), message, hashlib.sha256).digest())


def epoch_proof(previous_key: bytes, user_id: int, epoch: int, new_key: bytes) -> str:
    """docs/e2e.md: the new epoch's key, vouched for by a holder of the one before."""
    message = f"epoch {epoch} {b64u(new_key)}".encode()
    return b64u(hmac.new(ikm(previous_key, user_id), message, hashlib.sha256).digest())


def seal_recovery(recovery_key: bytes, recovery_pair: KeyPair) -> str:
    pkcs8 = recovery_pair.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
    nonce = os.urandom(12)
    sealing = hkdf(recovery_key, b"cloudbuffer-recovery-v1", b"seal")
    return b64u(nonce + AESGCM(sealing).encrypt(nonce, pkcs8, None))


def encrypt(data: bytes, key: bytes, keyid: str = "") -> bytes:
    return http_ece.encrypt(data, key=key, keyid=keyid, rs=RS, version="aes128gcm")


def decrypt(blob: bytes, key: bytes) -> bytes:
    return http_ece.decrypt(blob, key=key, version="aes128gcm")


@dataclass
class Item:
    """One encrypted item: its three blobs, and what they hold."""

    key: str  # b64u key blob
    meta: str  # b64u meta blob
    body: bytes
    item_key: bytes
    id: str


@dataclass
class Account:
    """An account's keys as an enrolled device holds them."""

    user_id: int
    keys: dict[int, bytes] = field(default_factory=lambda: {1: secrets.token_bytes(32)})
    device: KeyPair = field(default_factory=KeyPair)
    recovery_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    recovery: KeyPair = field(default_factory=KeyPair)

    @property
    def epoch(self) -> int:
        return max(self.keys)

    def enable_body(self, password: str, device: str) -> dict:
        key = self.keys[1]
        return {
            "password": password,
            "recovery": {"public_key": self.recovery.public_b64u,
                         "sealed_private_key": seal_recovery(self.recovery_key, self.recovery)},
            "device": {"public_key": self.device.public_b64u,
                       "attest": attest(key, self.user_id, device, self.device.public_b64u)},
            "wraps": [{"recipient": "self", "epoch": 1, "blob": wrap(key, 1, self.device.public_b64u)},
                      {"recipient": "recovery", "epoch": 1, "blob": wrap(key, 1, self.recovery.public_b64u)}],
        }

    def item(self, body: bytes, kind: str = "text", *, epoch: int | None = None, name: str | None = None,
             mime: str | None = None) -> Item:
        epoch = epoch or self.epoch
        item_key = secrets.token_bytes(16)
        item_id = secrets.token_hex(16)
        key_plain = json.dumps({"v": 1, "key": b64u(item_key), "id": item_id, "created": int(time.time() * 1000)})
        meta_plain: dict = {"v": 1, "kind": kind, "size": len(body)}
        if kind == "file":
            meta_plain.update(name=name or "file.bin", mime=mime or "application/octet-stream")
        return Item(
            key=b64u(encrypt(key_plain.encode(), ikm(self.keys[epoch], self.user_id), str(epoch))),
            meta=b64u(encrypt(json.dumps(meta_plain).encode(), item_key)),
            body=encrypt(body, item_key),
            item_key=item_key,
            id=item_id,
        )

    def open_item(self, key_blob: str, meta_blob: str, body: bytes) -> tuple[dict, dict, bytes]:
        raw_key = unb64u(key_blob)
        epoch = int(raw_key[21 : 21 + raw_key[20]].decode())
        key_plain = json.loads(decrypt(raw_key, ikm(self.keys[epoch], self.user_id)))
        item_key = unb64u(key_plain["key"])
        return key_plain, json.loads(decrypt(unb64u(meta_blob), item_key)), decrypt(body, item_key)


def headers(item: Item, kind: str = "text", *, with_key: bool = True) -> dict[str, str]:
    out = {"X-Encrypted": "aes128gcm", "X-Encrypted-Meta": item.meta, "X-Data-Type": kind,
           "Content-Type": "application/octet-stream"}
    if with_key:
        out["X-Encrypted-Key"] = item.key
    return out
