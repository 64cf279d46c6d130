"""The key material of docs/e2e.md: P-256 device keys and their wraps of
the account key, IKM_e, device attestations, the recovery key and its seal,
and the pairing's code and verification code (SAS). Pure functions over
bytes; nothing here talks to the server or touches files."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ACCOUNT_KEY_BYTES = 32
ITEM_KEY_BYTES = 16
RECOVERY_KEY_BYTES = 32
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
WRAP_INFO = b"cloudbuffer wrap v1"


class KeyMaterialError(ValueError):
    """A wrap, seal or encoding that does not open: wrong key, or altered."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise KeyMaterialError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


# --- P-256 -----------------------------------------------------------------

def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_spki(data: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(data)
    except ValueError:
        raise KeyMaterialError("not a public key (SPKI)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyMaterialError("not a P-256 public key")
    return key


def pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_pkcs8(data: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyMaterialError("not a private key (PKCS#8)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyMaterialError("not a P-256 private key")
    return key


def ecdh(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    return private.exchange(ec.ECDH(), public)


# --- the account key ---------------------------------------------------------

def new_account_key() -> bytes:
    return os.urandom(ACCOUNT_KEY_BYTES)


def items_ikm(account_key: bytes, user_id: int) -> bytes:
    """IKM_e: bound to the user, so a blob cannot move into another account."""
    return hkdf(account_key, b"cloudbuffer-e2e-v1", b"items user " + str(int(user_id)).encode(), 32)


def _wrap_aad(epoch: int) -> bytes:
    return b"cloudbuffer wrap v1 epoch " + str(int(epoch)).encode()


def wrap(account_key: bytes, epoch: int, recipient_spki: bytes,
         sender: ec.EllipticCurvePrivateKey | None = None) -> str:
    """K_e sealed to a P-256 public key, with a fresh ephemeral key, or with
    `sender`'s: a pairing wraps with the key pair the verification code was
    computed over, which binds the wraps to the exchange the person checked."""
    recipient = load_spki(recipient_spki)
    ephemeral = sender or new_private_key()
    ephemeral_spki = spki(ephemeral)
    key = hkdf(ecdh(ephemeral, recipient), ephemeral_spki + recipient_spki, WRAP_INFO, 32)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, account_key, _wrap_aad(epoch))
    return ".".join((b64u(ephemeral_spki), b64u(nonce), b64u(sealed)))


def unwrap(blob: str, epoch: int, private: ec.EllipticCurvePrivateKey) -> bytes:
    try:
        ephemeral_b64, nonce_b64, sealed_b64 = blob.split(".")
    except (ValueError, AttributeError):
        raise KeyMaterialError("a wrap is three base64url parts") from None
    ephemeral_spki, nonce, sealed = unb64u(ephemeral_b64), unb64u(nonce_b64), unb64u(sealed_b64)
    if len(nonce) != 12:
        raise KeyMaterialError("a wrap's nonce is 12 bytes")
    key = hkdf(ecdh(private, load_spki(ephemeral_spki)), ephemeral_spki + spki(private), WRAP_INFO, 32)
    try:
        account_key = AESGCM(key).decrypt(nonce, sealed, _wrap_aad(epoch))
    except InvalidTag:
        raise KeyMaterialError(f"the wrap of epoch {epoch} does not open with this device's key") from None
    if len(account_key) != ACCOUNT_KEY_BYTES:
        raise KeyMaterialError("a wrapped account key is 32 bytes")
    return account_key


def wrap_sender(blob: str) -> bytes:
    """The SPKI a wrap was made with (its first part)."""
    try:
        return unb64u(blob.split(".")[0])
    except (AttributeError, IndexError):
        raise KeyMaterialError("not a wrap") from None


def epoch_proof(previous_ikm: bytes, epoch: int, account_key: bytes) -> str:
    """Proof that a holder of the key before made epoch `epoch`'s key (a
    server can wrap a key of its own to any device; it cannot make this)."""
    message = b"epoch " + str(int(epoch)).encode() + b" " + b64u(account_key).encode()
    return b64u(hmac.new(previous_ikm, message, hashlib.sha256).digest())


def attest(ikm: bytes, device: str, public_key_b64u: str) -> str:
    """Proof that a holder of the account key registered this device key."""
    message = b"device " + device.encode() + b" " + public_key_b64u.encode()
    return b64u(hmac.new(ikm, message, hashlib.sha256).digest())


def check_attest(ikm: bytes, device: str, public_key_b64u: str, attestation: str) -> bool:
    return hmac.compare_digest(attest(ikm, device, public_key_b64u), attestation or "")


# --- Crockford base32 --------------------------------------------------------

def crockford(data: bytes, bits: int | None = None) -> str:
    """The first `bits` bits (all by default) as Crockford base32, 5 bits a
    character, the last character padded with zero bits."""
    bits = len(data) * 8 if bits is None else bits
    number = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
    chars = -(-bits // 5)
    number <<= chars * 5 - bits
    return "".join(CROCKFORD[(number >> (5 * (chars - 1 - i))) & 31] for i in range(chars))


def normalize_crockford(typed: str) -> str:
    """What a person typed: any case, spaces and dashes, O for 0, I or L for 1."""
    return re.sub(r"[\s-]", "", typed).upper().translate(_CONFUSABLE)


def uncrockford(text: str, bits: int) -> bytes:
    chars = -(-bits // 5)
    if len(text) != chars or any(char not in CROCKFORD for char in text):
        raise KeyMaterialError(f"{chars} characters of 0-9 and A-Z are expected")
    number = 0
    for char in text:
        number = number * 32 + CROCKFORD.index(char)
    if number & ((1 << (chars * 5 - bits)) - 1):
        raise KeyMaterialError("the last character does not fit (a typo?)")
    return (number >> (chars * 5 - bits)).to_bytes(-(-bits // 8), "big")


# --- the recovery key --------------------------------------------------------

def new_recovery_key() -> bytes:
    return os.urandom(RECOVERY_KEY_BYTES)


def format_recovery_key(key: bytes) -> str:
    """XXXX-XXXX-… : 256 bits are 52 characters, 13 groups of 4."""
    text = crockford(key)
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(typed: str) -> bytes:
    try:
        return uncrockford(normalize_crockford(typed), RECOVERY_KEY_BYTES * 8)
    except KeyMaterialError as error:
        raise KeyMaterialError(f"not a recovery key: {error}") from None


def _seal_key(recovery_key: bytes) -> bytes:
    return hkdf(recovery_key, b"cloudbuffer-recovery-v1", b"seal", 32)


def seal_private_key(recovery_key: bytes, private: ec.EllipticCurvePrivateKey) -> str:
    nonce = os.urandom(12)
    return b64u(nonce + AESGCM(_seal_key(recovery_key)).encrypt(nonce, pkcs8(private), None))


def unseal_private_key(recovery_key: bytes, sealed_b64u: str) -> ec.EllipticCurvePrivateKey:
    sealed = unb64u(sealed_b64u)
    try:
        der = AESGCM(_seal_key(recovery_key)).decrypt(sealed[:12], sealed[12:], None)
    except (InvalidTag, ValueError):
        raise KeyMaterialError("that recovery key does not open this account's recovery seal") from None
    return load_pkcs8(der)


# --- pairing -----------------------------------------------------------------

PAIRING_CODE_BITS = 50


def pairing_code(showing_spki: bytes) -> str:
    """The code a showing device's key commits to: 10 Crockford characters."""
    return crockford(hashlib.sha256(showing_spki).digest(), PAIRING_CODE_BITS)


def sas(shared_secret: bytes, shower_spki: bytes, scanner_spki: bytes) -> str:
    """The six-digit verification code both screens show."""
    value = int.from_bytes(hkdf(shared_secret, shower_spki + scanner_spki, b"cloudbuffer sas v1", 4), "big") >> 12
    return f"{value % 1_000_000:06d}"


def display_sas(code: str) -> str:
    return f"{code[:3]} {code[3:]}"
