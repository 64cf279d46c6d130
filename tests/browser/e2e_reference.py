"""docs/e2e.md in Python, independently of the PWA's JavaScript, so the
browser tests can check the PWA's bytes against it: http_ece for the
aes128gcm blobs, `cryptography` for HKDF, ECDH P-256 and AES-GCM."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RS = 65536
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def items_ikm(account_key: bytes, user_id: int) -> bytes:
    return hkdf(account_key, b"cloudbuffer-e2e-v1", f"items user {user_id}".encode(), 32)


def encrypt(ikm: bytes, data: bytes, keyid: str = "") -> bytes:
    return http_ece.encrypt(data, salt=os.urandom(16), key=ikm, keyid=keyid, rs=RS, version="aes128gcm")


def decrypt(ikm: bytes, blob: bytes) -> bytes:
    return http_ece.decrypt(blob, key=ikm, version="aes128gcm")


def keyid(blob: bytes) -> str:
    return blob[21:21 + blob[20]].decode()


def spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_spki(data: bytes) -> ec.EllipticCurvePublicKey:
    return serialization.load_der_public_key(data)


def wrap(account_key: bytes, epoch: int, recipient_spki: bytes) -> str:
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_spki = spki(ephemeral.public_key())
    secret = ephemeral.exchange(ec.ECDH(), load_spki(recipient_spki))
    w = hkdf(secret, ephemeral_spki + recipient_spki, b"cloudbuffer wrap v1", 32)
    nonce = os.urandom(12)
    sealed = AESGCM(w).encrypt(nonce, account_key, f"cloudbuffer wrap v1 epoch {epoch}".encode())
    return f"{b64u(ephemeral_spki)}.{b64u(nonce)}.{b64u(sealed)}"


def unwrap(blob: str, epoch: int, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    ephemeral_spki, nonce, sealed = (unb64u(part) for part in blob.split("."))
    secret = private_key.exchange(ec.ECDH(), load_spki(ephemeral_spki))
    w = hkdf(secret, ephemeral_spki + spki(private_key.public_key()), b"cloudbuffer wrap v1", 32)
    return AESGCM(w).decrypt(nonce, sealed, f"cloudbuffer wrap v1 epoch {epoch}".encode())


def crockford(data: bytes, chars: int) -> str:
    bits = "".join(f"{byte:08b}" for byte in data)
    bits = bits.ljust(chars * 5, "0")[:chars * 5]
    return "".join(CROCKFORD[int(bits[i:i + 5], 2)] for i in range(0, chars * 5, 5))


def pairing_code(shower_spki: bytes) -> str:
    return crockford(hashlib.sha256(shower_spki).digest()[:7], 10)


def sas(private_key: ec.EllipticCurvePrivateKey, peer_spki: bytes, shower_spki: bytes, scanner_spki: bytes) -> str:
    secret = private_key.exchange(ec.ECDH(), load_spki(peer_spki))
    out = hkdf(secret, shower_spki + scanner_spki, b"cloudbuffer sas v1", 4)
    digits = f"{(int.from_bytes(out, 'big') >> 12) % 10**6:06d}"
    return f"{digits[:3]} {digits[3:]}"


def open_recovery(recovery: bytes, sealed_b64u: str) -> ec.EllipticCurvePrivateKey:
    sealed = unb64u(sealed_b64u)
    key = hkdf(recovery, b"cloudbuffer-recovery-v1", b"seal", 32)
    return serialization.load_der_private_key(AESGCM(key).decrypt(sealed[:12], sealed[12:], None), None)


def parse_recovery_key(text: str) -> bytes:
    chars = text.replace("-", "").upper()
    bits = "".join(f"{CROCKFORD.index(ch):05b}" for ch in chars)
    return int(bits[:256], 2).to_bytes(32, "big")


def attest(ikm: bytes, device: str, public_key_b64u: str) -> str:
    return b64u(hmac.new(ikm, f"device {device} {public_key_b64u}".encode(), hashlib.sha256).digest())
