"""client/cloudbuffer_client/keys.py: the constructions of docs/e2e.md,
checked against independent computations (HKDF written out from RFC 5869
with hmac, base32 from the bit string) and against each other."""
from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from cloudbuffer_client import keys


def rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_b64u_has_no_padding_and_refuses_other_alphabets():
    assert keys.b64u(b"\xfb\xff") == "-_8"
    assert keys.unb64u("-_8") == b"\xfb\xff"
    for bad in ("+/8", "-_8=", "a", "ab c"):
        with pytest.raises(keys.KeyMaterialError):
            keys.unb64u(bad)


def test_items_ikm_is_the_documented_hkdf_and_bound_to_the_user():
    account_key = bytes(range(32))
    assert keys.items_ikm(account_key, 42) == rfc5869(account_key, b"cloudbuffer-e2e-v1", b"items user 42", 32)
    assert keys.items_ikm(account_key, 42) != keys.items_ikm(account_key, 43)


def test_wrap_opens_only_with_the_recipient_key_and_its_epoch():
    account_key = keys.new_account_key()
    device = keys.new_private_key()
    blob = keys.wrap(account_key, 3, keys.spki(device))
    parts = blob.split(".")
    assert len(parts) == 3 and len(keys.unb64u(parts[1])) == 12
    assert keys.load_spki(keys.unb64u(parts[0]))  # the ephemeral key, as SPKI
    assert keys.unwrap(blob, 3, device) == account_key
    with pytest.raises(keys.KeyMaterialError):
        keys.unwrap(blob, 4, device)  # the epoch is in the AAD
    with pytest.raises(keys.KeyMaterialError):
        keys.unwrap(blob, 3, keys.new_private_key())


def test_wrap_follows_the_documented_derivation():
    """Open a wrap by hand: ECDH, HKDF over both SPKIs, AES-256-GCM with the epoch AAD."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    account_key = keys.new_account_key()
    device = keys.new_private_key()
    ephemeral_b64, nonce_b64, sealed_b64 = keys.wrap(account_key, 1, keys.spki(device)).split(".")
    ephemeral_spki = keys.unb64u(ephemeral_b64)
    shared = device.exchange(ec.ECDH(), keys.load_spki(ephemeral_spki))
    wrapping = rfc5869(shared, ephemeral_spki + keys.spki(device), b"cloudbuffer wrap v1", 32)
    assert AESGCM(wrapping).decrypt(keys.unb64u(nonce_b64), keys.unb64u(sealed_b64),
                                    b"cloudbuffer wrap v1 epoch 1") == account_key


def test_attest():
    ikm = bytes(32)
    expected = keys.b64u(hmac.new(ikm, b"device token:3 AbC", hashlib.sha256).digest())
    assert keys.attest(ikm, "token:3", "AbC") == expected
    assert keys.check_attest(ikm, "token:3", "AbC", expected)
    assert not keys.check_attest(ikm, "token:4", "AbC", expected)


def test_recovery_key_shows_as_groups_and_reads_back_forgivingly():
    key = keys.new_recovery_key()
    shown = keys.format_recovery_key(key)
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){12}[0-9A-HJKMNP-TV-Z]{4}", shown), shown
    bits = bin(int.from_bytes(key, "big"))[2:].zfill(256) + "0000"
    assert shown.replace("-", "") == "".join(keys.CROCKFORD[int(bits[i:i + 5], 2)] for i in range(0, 260, 5))
    typed = " " + shown.lower().replace("0", "o").replace("1", "l").replace("-", " ") + "\n"
    assert keys.parse_recovery_key(typed) == key
    with pytest.raises(keys.KeyMaterialError):
        keys.parse_recovery_key(shown[:-1])
    with pytest.raises(keys.KeyMaterialError):
        keys.parse_recovery_key(shown[:-1] + "U!")


def test_recovery_seal():
    recovery = keys.new_recovery_key()
    private = keys.new_private_key()
    sealed = keys.seal_private_key(recovery, private)
    raw = keys.unb64u(sealed)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    seal_key = rfc5869(recovery, b"cloudbuffer-recovery-v1", b"seal", 32)
    assert AESGCM(seal_key).decrypt(raw[:12], raw[12:], None) == keys.pkcs8(private)
    assert keys.spki(keys.unseal_private_key(recovery, sealed)) == keys.spki(private)
    with pytest.raises(keys.KeyMaterialError):
        keys.unseal_private_key(keys.new_recovery_key(), sealed)


def test_pairing_code_is_the_first_50_bits_of_the_key_hash():
    showing = keys.spki(keys.new_private_key())
    bits = bin(int.from_bytes(hashlib.sha256(showing).digest(), "big"))[2:].zfill(256)[:50]
    assert keys.pairing_code(showing) == "".join(keys.CROCKFORD[int(bits[i:i + 5], 2)] for i in range(0, 50, 5))


def test_both_sides_compute_the_same_sas():
    shower, scanner = keys.new_private_key(), keys.new_private_key()
    shower_spki, scanner_spki = keys.spki(shower), keys.spki(scanner)
    on_shower = keys.sas(keys.ecdh(shower, keys.load_spki(scanner_spki)), shower_spki, scanner_spki)
    on_scanner = keys.sas(keys.ecdh(scanner, keys.load_spki(shower_spki)), shower_spki, scanner_spki)
    assert on_shower == on_scanner and re.fullmatch(r"\d{6}", on_shower)
    shared = keys.ecdh(shower, keys.load_spki(scanner_spki))
    expected = (int.from_bytes(rfc5869(shared, shower_spki + scanner_spki, b"cloudbuffer sas v1", 4), "big") >> 12) % 10**6
    assert on_shower == f"{expected:06d}"
    # A key swapped in the middle gives another code.
    mallory = keys.spki(keys.new_private_key())
    assert keys.sas(keys.ecdh(shower, keys.load_spki(mallory)), shower_spki, mallory) != on_shower
    assert keys.display_sas("012345") == "012 345"
