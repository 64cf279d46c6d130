"""The shapes of end-to-end encrypted values, checked without any key.

The server never decrypts (docs/e2e.md): it checks only what it can see,
so that garbage is refused at the door with 400 instead of being stored
and relayed to every device. An RFC 8188 aes128gcm blob is

    salt(16) | rs(uint32 BE) | idlen(1) | keyid(idlen) | records…

with every record `rs` bytes but the last, which is at least 17 (a 16-byte
tag and the delimiter). Public keys are P-256 SPKI; their point is checked
to be on the curve, in pure Python (a few multiplications), so the server
needs no cryptography library.
"""
from __future__ import annotations

import base64
import binascii
import re

from .errors import APIError

RECORD_SIZE = 65536  # docs/e2e.md: every blob, bodies and key/meta blobs alike
TAG_AND_DELIMITER = 17  # each record's AES-GCM tag (16) and its delimiter byte
PLAINTEXT_PER_RECORD = RECORD_SIZE - TAG_AND_DELIMITER
BASE_HEADER = 21  # salt 16, rs 4, idlen 1
MAX_META_CHARS = 6144  # b64u of the meta blob; docs/e2e.md says why
MAX_KEY_BLOB_CHARS = 1024  # JSON of a 16-byte key, an id and a time: ~200 characters
MAX_EPOCH_DIGITS = 9
MAX_WRAP_CHARS = 256  # b64u of a 91-byte SPKI, a 12-byte nonce and 48 bytes: 204 characters
ENCODING = "aes128gcm"

_B64U = re.compile(r"[A-Za-z0-9_-]*")


def invalid(message: str) -> APIError:
    return APIError(400, "invalid_ciphertext", message)


def b64u_decode(value: str, what: str, error=invalid) -> bytes:
    """Base64url without padding (docs/e2e.md), strictly: no padding, no
    other alphabet, no whitespace, no stray bits."""
    if not isinstance(value, str) or not _B64U.fullmatch(value) or len(value) % 4 == 1:
        raise error(f"{what} must be base64url without padding.")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise error(f"{what} must be base64url without padding.") from None
    if b64u_encode(data) != value:
        raise error(f"{what} must be base64url without padding.")
    return data


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_header(data: bytes, what: str) -> str:
    """The keyid of an aes128gcm header at the start of `data`; refuses any
    record size but RECORD_SIZE."""
    if len(data) < BASE_HEADER:
        raise invalid(f"{what} is not {ENCODING}: it is shorter than the header.")
    rs = int.from_bytes(data[16:20], "big")
    if rs != RECORD_SIZE:
        raise invalid(f"{what} has record size {rs}; this server takes {RECORD_SIZE} (docs/e2e.md).")
    idlen = data[20]
    keyid = data[BASE_HEADER : BASE_HEADER + idlen]
    if len(keyid) < idlen:
        raise invalid(f"{what} is not {ENCODING}: its key id is cut short.")
    try:
        return keyid.decode("ascii")
    except UnicodeDecodeError:
        raise invalid(f"{what} has a key id that is not ASCII.") from None


def header_length(keyid: str) -> int:
    return BASE_HEADER + len(keyid)


def check_records(total: int, header_len: int, what: str, *, may_be_empty: bool = False) -> None:
    """A last record that can hold a tag and its delimiter, and at least one
    record unless `may_be_empty` (an empty body: http_ece, the reference
    implementation, writes an empty text as the header alone)."""
    payload = total - header_len
    last = payload % RECORD_SIZE
    if (payload < TAG_AND_DELIMITER and not (may_be_empty and payload == 0)) or 0 < last < TAG_AND_DELIMITER:
        raise invalid(f"{what} is not {ENCODING}: its last record is cut short.")


def check_item_key_blob(data: bytes, what: str, *, may_be_empty: bool = False) -> None:
    """A blob under an item key: empty keyid (meta blobs and bodies)."""
    keyid = parse_header(data, what)
    if keyid:
        raise invalid(f"{what} is encrypted under an item key, so its key id must be empty.")
    check_records(len(data), BASE_HEADER, what, may_be_empty=may_be_empty)


def key_blob_epoch(data: bytes) -> int:
    """The epoch a key blob names in its keyid (the decimal epoch)."""
    keyid = parse_header(data, "The key blob")
    if not re.fullmatch(r"[1-9][0-9]*", keyid) or len(keyid) > MAX_EPOCH_DIGITS:
        raise invalid("The key blob's key id must be its epoch as decimal digits.")
    check_records(len(data), header_length(keyid), "The key blob")
    if len(data) > header_length(keyid) + RECORD_SIZE:
        raise invalid("The key blob is one record.")
    return int(keyid)


def check_meta(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid("An encrypted item needs its meta blob (X-Encrypted-Meta, or `meta`).")
    if len(value) > MAX_META_CHARS:
        raise invalid(f"The meta blob is limited to {MAX_META_CHARS} characters of base64url.")
    data = b64u_decode(value, "The meta blob")
    check_item_key_blob(data, "The meta blob")
    if len(data) > BASE_HEADER + RECORD_SIZE:
        raise invalid("The meta blob is one record.")
    return value


def check_key_blob(value: str) -> int:
    """The key blob's epoch."""
    if not isinstance(value, str) or not value:
        raise invalid("An encrypted item needs its key blob (X-Encrypted-Key, or `key`).")
    if len(value) > MAX_KEY_BLOB_CHARS:
        raise invalid(f"The key blob is limited to {MAX_KEY_BLOB_CHARS} characters of base64url.")
    return key_blob_epoch(b64u_decode(value, "The key blob"))


def max_body_bytes(plaintext_bytes: int) -> int:
    """The largest body blob for this much plaintext: the header and, per
    started record, a tag and a delimiter (an empty text is one record)."""
    records = max(1, -(-plaintext_bytes // PLAINTEXT_PER_RECORD))
    return BASE_HEADER + plaintext_bytes + TAG_AND_DELIMITER * records


class StreamCheck:
    """The checks of check_item_key_blob on a body that streams past: the
    header once it has arrived, the last record at the end."""

    def __init__(self, what: str = "The body") -> None:
        self.what = what
        self.head = b""
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < BASE_HEADER:
            self.head += chunk[: BASE_HEADER - len(self.head)]
            if len(self.head) == BASE_HEADER:
                if parse_header(self.head, self.what):
                    raise invalid(f"{self.what} is encrypted under an item key, so its key id must be empty.")
        self.total += len(chunk)

    def finish(self) -> None:
        if len(self.head) < BASE_HEADER:
            raise invalid(f"{self.what} is not {ENCODING}: it is shorter than the header.")
        check_records(self.total, BASE_HEADER, self.what, may_be_empty=True)


# --- P-256 public keys ------------------------------------------------------------

# The DER of SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, up to the
# uncompressed point (RFC 5480): every P-256 SPKI starts with these bytes.
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def invalid_key(message: str) -> APIError:
    return APIError(400, "invalid_key", message)


def check_public_key(value, what: str = "public_key") -> str:
    """A b64u P-256 SPKI whose point lies on the curve."""
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise invalid_key(f"{what} must be a P-256 public key (SPKI, base64url).")
    data = b64u_decode(value, what, invalid_key)
    if len(data) != len(_SPKI_PREFIX) + 64 or not data.startswith(_SPKI_PREFIX):
        raise invalid_key(f"{what} must be a P-256 public key (SPKI with an uncompressed point, base64url).")
    x = int.from_bytes(data[-64:-32], "big")
    y = int.from_bytes(data[-32:], "big")
    if x >= _P or y >= _P or (y * y - (x * x * x - 3 * x + _B)) % _P != 0:
        raise invalid_key(f"{what} is not a point on the P-256 curve.")
    return value


# --- wraps and other opaque values --------------------------------------------------

def check_wrap(value, what: str = "A wrap") -> str:
    """`b64u(ephemeral SPKI) "." b64u(nonce) "." b64u(ciphertext)`: the
    ephemeral key on the curve, a 12-byte nonce, and a ciphertext of a
    32-byte key and its tag."""
    error = lambda message: APIError(400, "invalid_wraps", message)  # noqa: E731
    parts = value.split(".") if isinstance(value, str) and len(value) <= MAX_WRAP_CHARS else []
    if len(parts) != 3:
        raise error(f"{what} is b64u(ephemeral SPKI).b64u(nonce).b64u(ciphertext) (docs/e2e.md).")
    try:
        check_public_key(parts[0], f"{what}'s ephemeral key")
    except APIError as bad:
        raise error(bad.message) from None
    if len(b64u_decode(parts[1], f"{what}'s nonce", error)) != 12:
        raise error(f"{what}'s nonce is 12 bytes.")
    if len(b64u_decode(parts[2], f"{what}'s ciphertext", error)) != 48:
        raise error(f"{what}'s ciphertext is a 32-byte key and its 16-byte tag.")
    return value


def check_opaque(value, what: str, max_chars: int, *, min_bytes: int = 1) -> str:
    """A b64u value the server only stores (an attestation, a sealed key)."""
    if not isinstance(value, str) or len(value) > max_chars:
        raise APIError(400, "invalid_input", f"'{what}' is a base64url string of at most {max_chars} characters.")
    data = b64u_decode(value, f"'{what}'", lambda message: APIError(400, "invalid_input", message))
    if len(data) < min_bytes:
        raise APIError(400, "invalid_input", f"'{what}' is too short.")
    return value
