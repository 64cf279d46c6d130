"""RFC 8188 "aes128gcm" content coding, record by record (docs/e2e.md).

`http_ece` implements the same format but only on whole bytes in memory; a
1 GiB file must stream, so the encoder and decoder here keep at most about
two records in hand whatever the body's size. The tests hold them to
http_ece byte for byte, both ways.

One deliberate difference: an empty plaintext is one record holding only the
last-record delimiter (http_ece writes a bare header). RFC 8188 ends every
body with a record marked last, which is what lets a decoder tell a whole
body from one cut at a record boundary, so the decoder refuses a bare header.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RS = 65536
TAG = 16
SALT = 16
HEADER_FIXED = SALT + 4 + 1  # salt | rs | idlen, then the keyid
MIN_RS = TAG + 2  # a delimiter and at least one byte
# Records are held whole while they are opened; a header asking for more
# than this is refused instead of buffering what a server says.
MAX_RS = 1 << 20
CEK_INFO = b"Content-Encoding: aes128gcm\x00"
NONCE_INFO = b"Content-Encoding: nonce\x00"
NOT_LAST, LAST = 1, 2


class CiphertextError(ValueError):
    """Not an aes128gcm body under this key: wrong key, altered or cut."""


@dataclass(frozen=True)
class Header:
    salt: bytes
    rs: int
    keyid: bytes

    @property
    def length(self) -> int:
        return HEADER_FIXED + len(self.keyid)

    def encode(self) -> bytes:
        return self.salt + struct.pack(">IB", self.rs, len(self.keyid)) + self.keyid


def parse_header(data: bytes) -> Header | None:
    """The header at the start of `data`, or None if `data` is too short yet."""
    if len(data) < HEADER_FIXED:
        return None
    rs, idlen = struct.unpack(">IB", data[SALT:HEADER_FIXED])
    if len(data) < HEADER_FIXED + idlen:
        return None
    if not MIN_RS <= rs <= MAX_RS:
        raise CiphertextError(f"record size {rs} is outside {MIN_RS}..{MAX_RS}")
    return Header(bytes(data[:SALT]), rs, bytes(data[HEADER_FIXED:HEADER_FIXED + idlen]))


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def derive(ikm: bytes, salt: bytes) -> tuple[AESGCM, bytes]:
    """The content-encryption key and base nonce of RFC 8188 §2.2–2.3."""
    return AESGCM(_hkdf(ikm, salt, CEK_INFO, 16)), _hkdf(ikm, salt, NONCE_INFO, 12)


def _nonce(base: bytes, seq: int) -> bytes:
    return (int.from_bytes(base, "big") ^ seq).to_bytes(12, "big")


def overhead(plain_size: int, keyid: bytes = b"", rs: int = RS) -> int:
    """Ciphertext bytes minus plaintext bytes for a body of `plain_size`."""
    records = max(1, -(-plain_size // (rs - TAG - 1)))
    return HEADER_FIXED + len(keyid) + records * (TAG + 1)


def encrypted_size(plain_size: int, keyid: bytes = b"", rs: int = RS) -> int:
    return plain_size + overhead(plain_size, keyid, rs)


class Encoder:
    """Feed plaintext with update(), end with finish(); each returns the
    ciphertext ready so far. One record of plaintext is held back until it
    is known whether it is the last."""

    def __init__(self, ikm: bytes, keyid: bytes = b"", rs: int = RS, salt: bytes | None = None) -> None:
        if not MIN_RS <= rs <= MAX_RS or len(keyid) > 255:
            raise ValueError("bad record size or keyid")
        self.header = Header(salt if salt is not None else os.urandom(SALT), rs, keyid)
        self._aead, self._base = derive(ikm, self.header.salt)
        self._chunk = rs - TAG - 1
        self._pending = bytearray()
        self._seq = 0
        self._started = False
        self._done = False

    def _record(self, plain: bytes | bytearray, delimiter: int) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._base, self._seq), bytes(plain) + bytes((delimiter,)), None)
        self._seq += 1
        return sealed

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.header.encode()

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise ValueError("finish() was called")
        self._pending += data
        out = [self._start()]
        # Strictly more than a record: the held-back one may still be the last.
        while len(self._pending) > self._chunk:
            out.append(self._record(self._pending[:self._chunk], NOT_LAST))
            del self._pending[:self._chunk]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            raise ValueError("finish() was called")
        self._done = True
        out = self._start() + self._record(self._pending, LAST)
        self._pending = bytearray()
        return out


class Decoder:
    """Feed ciphertext with update(), end with finish(); each returns the
    plaintext opened so far. Raises CiphertextError on a wrong key, an
    altered record, or a body cut short (the last record is marked)."""

    def __init__(self, ikm_for) -> None:
        """`ikm_for(keyid: bytes) -> bytes` picks the key once the header is read
        (the epoch is in the keyid); a bytes value is used as is."""
        self._ikm_for = ikm_for if callable(ikm_for) else (lambda keyid: ikm_for)
        self._buffer = bytearray()
        self.header: Header | None = None
        self._aead: AESGCM | None = None
        self._seq = 0
        self._ended = False

    def _open(self, record: bytes, last: bool) -> bytes:
        try:
            plain = self._aead.decrypt(_nonce(self._base, self._seq), bytes(record), None)
        except InvalidTag:
            raise CiphertextError("a record does not open under this key (a wrong key, or altered)") from None
        self._seq += 1
        end = len(plain.rstrip(b"\x00"))  # RFC 8188 allows zero padding after the delimiter
        if end == 0:
            raise CiphertextError("a record has no delimiter")
        delimiter = plain[end - 1]
        if delimiter == LAST:
            if not last:
                raise CiphertextError("data after the last record")
            self._ended = True
        elif delimiter != NOT_LAST or last:
            raise CiphertextError("the body was cut short" if delimiter == NOT_LAST else "a bad record delimiter")
        return plain[:end - 1]

    def update(self, data: bytes) -> bytes:
        if self._ended and data:
            raise CiphertextError("data after the last record")
        self._buffer += data
        if self.header is None:
            header = parse_header(self._buffer)
            if header is None:
                return b""
            self.header = header
            self._aead, self._base = derive(self._ikm_for(header.keyid), header.salt)
            del self._buffer[:header.length]
        out = []
        rs = self.header.rs
        # A full record is opened only once a byte beyond it shows it is not the last.
        while len(self._buffer) > rs:
            out.append(self._open(self._buffer[:rs], last=False))
            del self._buffer[:rs]
        return b"".join(out)

    def finish(self) -> bytes:
        if self.header is None:
            raise CiphertextError("not an aes128gcm body (too short for its header)")
        if self._ended and not self._buffer:
            return b""
        if not self._buffer:
            raise CiphertextError("the body was cut short (no last record)")
        if len(self._buffer) <= TAG:
            raise CiphertextError("the body was cut short inside a record")
        plain = self._open(self._buffer, last=True)
        self._buffer = bytearray()
        return plain


def encrypt_stream(chunks: Iterable[bytes], ikm: bytes, keyid: bytes = b"", rs: int = RS) -> Iterator[bytes]:
    encoder = Encoder(ikm, keyid, rs)
    for chunk in chunks:
        out = encoder.update(chunk)
        if out:
            yield out
    yield encoder.finish()


def decrypt_stream(chunks: Iterable[bytes], ikm_for) -> Iterator[bytes]:
    decoder = Decoder(ikm_for)
    for chunk in chunks:
        out = decoder.update(chunk)
        if out:
            yield out
    last = decoder.finish()
    if last:
        yield last


async def adecrypt_stream(chunks: AsyncIterable[bytes], ikm_for) -> AsyncIterator[bytes]:
    decoder = Decoder(ikm_for)
    async for chunk in chunks:
        out = decoder.update(chunk)
        if out:
            yield out
    last = decoder.finish()
    if last:
        yield last


def encrypt(plain: bytes, ikm: bytes, keyid: bytes = b"", rs: int = RS) -> bytes:
    return b"".join(encrypt_stream([plain], ikm, keyid, rs))


def decrypt(blob: bytes, ikm_for) -> bytes:
    return b"".join(decrypt_stream([blob], ikm_for))
