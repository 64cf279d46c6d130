"""client/cloudbuffer_client/ece.py against http_ece, the reference RFC 8188
implementation: byte for byte both ways, at the sizes where records split,
and streamed with bounded memory."""
from __future__ import annotations

import hashlib
import os
import tracemalloc

import http_ece
import pytest

from cloudbuffer_client import ece

IKM = bytes(range(32))
CHUNK = ece.RS - 17  # plaintext bytes in a full record
SIZES = [1, 17, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 5, 1_000_000]


def pieces(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keyid", [b"", b"12"])
def test_same_bytes_as_http_ece(size, keyid):
    plain = os.urandom(size)
    salt = os.urandom(16)
    reference = http_ece.encrypt(plain, salt=salt, key=IKM, keyid=keyid.decode(), rs=ece.RS, version="aes128gcm")
    encoder = ece.Encoder(IKM, keyid, salt=salt)
    # Fed in odd pieces: the record boundaries must not depend on how the input arrives.
    ours = b"".join(encoder.update(piece) for piece in pieces(plain, 7919)) + encoder.finish()
    assert ours == reference
    assert len(ours) == ece.encrypted_size(size, keyid)


@pytest.mark.parametrize("size", SIZES)
def test_decodes_what_http_ece_encodes(size):
    plain = os.urandom(size)
    blob = http_ece.encrypt(plain, key=IKM, keyid="3", rs=ece.RS, version="aes128gcm")
    seen = []

    def ikm_for(keyid):
        seen.append(keyid)
        return IKM

    assert b"".join(ece.decrypt_stream(pieces(blob, 4099), ikm_for)) == plain
    assert seen == [b"3"]


@pytest.mark.parametrize("size", SIZES)
def test_http_ece_decodes_ours(size):
    plain = os.urandom(size)
    assert http_ece.decrypt(ece.encrypt(plain, IKM), key=IKM, version="aes128gcm") == plain


def test_empty_plaintext_is_one_last_record():
    blob = ece.encrypt(b"", IKM)
    assert len(blob) == ece.HEADER_FIXED + 17
    assert http_ece.decrypt(blob, key=IKM, version="aes128gcm") == b""
    assert ece.decrypt(blob, IKM) == b""
    # http_ece's bare header is what a body cut before its first record looks like.
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(http_ece.encrypt(b"", key=IKM, rs=ece.RS, version="aes128gcm"), IKM)


def test_zero_padding_after_the_delimiter_is_accepted():
    # Another encoder may pad (RFC 8188 §2); build one padded last record by hand.
    salt = os.urandom(16)
    aead, base = ece.derive(IKM, salt)
    record = aead.encrypt(base, b"padded" + b"\x02" + b"\x00" * 9, None)
    header = ece.Header(salt, ece.RS, b"").encode()
    assert ece.decrypt(header + record, IKM) == b"padded"


def test_wrong_key_altered_and_cut_bodies_are_refused():
    plain = os.urandom(3 * CHUNK)
    blob = ece.encrypt(plain, IKM)
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(blob, bytes(32))
    altered = bytearray(blob)
    altered[ece.HEADER_FIXED + CHUNK + 40] ^= 1
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(bytes(altered), IKM)
    # Cut at a record boundary: every record still opens, but none is marked last.
    with pytest.raises(ece.CiphertextError, match="cut short"):
        ece.decrypt(blob[:ece.HEADER_FIXED + 2 * ece.RS], IKM)
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(blob[:ece.HEADER_FIXED + 2 * ece.RS + 10], IKM)
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(blob + b"x", IKM)
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(blob[:10], IKM)


def test_records_cannot_be_reordered():
    blob = ece.encrypt(os.urandom(3 * CHUNK), IKM)
    h, rs = ece.HEADER_FIXED, ece.RS
    swapped = blob[:h] + blob[h + rs:h + 2 * rs] + blob[h:h + rs] + blob[h + 2 * rs:]
    with pytest.raises(ece.CiphertextError):
        ece.decrypt(swapped, IKM)


def test_a_huge_record_size_in_a_header_is_refused():
    header = ece.Header(os.urandom(16), ece.MAX_RS + 1, b"").encode()
    with pytest.raises(ece.CiphertextError, match="record size"):
        ece.decrypt(header + bytes(100), IKM)


def test_streams_keep_memory_bounded():
    """200 MiB through the encoder and back through the decoder, never held:
    the peak of Python allocations stays at a few records."""
    total = 200 * 1024 * 1024
    block = os.urandom(256 * 1024)

    def source():
        for _ in range(total // len(block)):
            yield block

    expected = hashlib.sha256()
    for piece in source():
        expected.update(piece)
    tracemalloc.start()
    try:
        digest, size = hashlib.sha256(), 0
        for piece in ece.decrypt_stream(ece.encrypt_stream(source(), IKM), IKM):
            digest.update(piece)
            size += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == total and digest.digest() == expected.digest()
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"
