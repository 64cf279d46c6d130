"""The PWA's encryption (pwa/js/e2e/) in real Chromium against docs/e2e.md
written in Python (e2e_reference.py: http_ece, cryptography), both ways:
blobs made by http_ece decrypt in the browser, whole and as a stream, and
the browser's blobs decrypt with http_ece; wraps, pairing codes,
verification codes, the recovery seal and attestations agree too."""
from __future__ import annotations

import base64
import os
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import e2e_reference as ref

CHUNK = ref.RS - 17


@pytest.fixture
def crypto_page(new_context):
    """A page of the app's origin with the e2e modules imported as window.e2e."""
    page = new_context().new_page()
    page.goto("/account/login")
    version = re.search(r"/pwa/js/([0-9a-f]{12})/", page.content()).group(1)
    page.evaluate("""async (base) => {
        window.e2e = {
            ...(await import(`${base}/e2e/ece.js`)),
            ...(await import(`${base}/e2e/keys.js`)),
            ...(await import(`${base}/e2e/b64u.js`)),
        };
        window.bytesOf = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        window.b64Of = (bytes) => { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); };
    }""", f"/pwa/js/{version}")
    return page


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SIZES = [1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 12345]


@pytest.mark.parametrize("size", SIZES)
def test_blobs_of_http_ece_decrypt_in_the_browser_whole_and_streamed(crypto_page, size):
    ikm, data = os.urandom(32), os.urandom(size)
    blob = ref.encrypt(ikm, data, keyid="3")
    whole, streamed = crypto_page.evaluate("""async ([ikm, blob]) => {
        const bytes = bytesOf(blob);
        const whole = await e2e.decryptBytes(bytesOf(ikm), bytes, {expectKeyid: "3"});
        // Arriving in odd pieces, as a network stream does.
        const stream = new ReadableStream({start(controller) {
            for (let at = 0; at < bytes.length; at += 7777) controller.enqueue(bytes.slice(at, at + 7777));
            controller.close();
        }});
        const out = await e2e.decryptStream(stream, async (header) => header.keyid === "3" ? bytesOf(ikm) : null);
        return [b64Of(whole), b64Of(new Uint8Array(await out.arrayBuffer()))];
    }""", [b64(ikm), b64(blob)])
    assert base64.b64decode(whole) == data
    assert base64.b64decode(streamed) == data


@pytest.mark.parametrize("size", [0] + SIZES)
def test_blobs_of_the_browser_decrypt_with_http_ece(crypto_page, size):
    ikm, data = os.urandom(32), os.urandom(size)
    small, big = crypto_page.evaluate("""async ([ikm, data]) => {
        const bytes = bytesOf(data);
        const small = await e2e.encryptBytes(bytesOf(ikm), bytes, {keyid: "2"});
        const big = await e2e.encryptBlob(bytesOf(ikm), new Blob([bytes]), {keyid: "2"});
        return [b64Of(small), b64Of(new Uint8Array(await big.arrayBuffer()))];
    }""", [b64(ikm), b64(data)])
    for blob in (base64.b64decode(small), base64.b64decode(big)):
        assert ref.keyid(blob) == "2"
        assert int.from_bytes(blob[16:20], "big") == ref.RS
        records = max(1, -(-size // CHUNK))
        assert len(blob) == 21 + 1 + size + 17 * records  # no padding, one record for nothing at all
        assert ref.decrypt(ikm, blob) == data


def test_damaged_or_cut_or_foreign_blobs_are_refused(crypto_page):
    ikm, data = os.urandom(32), os.urandom(2 * CHUNK + 10)
    blob = bytearray(ref.encrypt(ikm, data))
    flipped = bytes(blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    cut = bytes(blob[:21 + 2 * ref.RS])  # the last record is missing: the second one says it is not the last
    errors = crypto_page.evaluate("""async ([ikm, other, blobs]) => {
        const out = [];
        for (const [key, blob] of [[ikm, blobs[0]], [ikm, blobs[1]], [other, blobs[2]], [ikm, blobs[3]]]) {
            try {
                await e2e.decryptBytes(bytesOf(key), bytesOf(blob));
                out.push("decrypted");
            } catch (error) { out.push(error.name + ": " + error.message); }
            try {
                await e2e.decryptStream(new Response(bytesOf(blob)).body, async () => bytesOf(key));
                out.push("decrypted");
            } catch (error) { out.push(error.name + ": " + error.message); }
        }
        return out;
    }""", [b64(ikm), b64(os.urandom(32)), [b64(flipped), b64(cut), b64(bytes(blob)), b64(b"not ece")]])
    assert all(error.startswith("CiphertextError") for error in errors), errors
    assert "cut short" in errors[2] and "cut short" in errors[3]


def test_keys_agree_with_the_contract(crypto_page):
    account_key, user_id = os.urandom(32), 4711
    recipient = ec.generate_private_key(ec.SECP256R1())
    recipient_spki = ref.spki(recipient.public_key())
    shower = ec.generate_private_key(ec.SECP256R1())
    shower_spki = ref.spki(shower.public_key())
    python_wrap = ref.wrap(account_key, 5, recipient_spki)
    out = crypto_page.evaluate("""async ([key, userId, recipientSpki, showerSpki, pythonWrap, recipientPkcs8]) => {
        const accountKey = bytesOf(key);
        const ikm = await e2e.itemsIKM(accountKey, userId);
        const wrap = await e2e.wrapKey(accountKey, 5, bytesOf(recipientSpki));
        const own = await crypto.subtle.importKey("pkcs8", bytesOf(recipientPkcs8), {name: "ECDH", namedCurve: "P-256"},
            false, ["deriveBits"]);
        const unwrapped = await e2e.unwrapKey(pythonWrap, 5, {privateKey: own, spki: bytesOf(recipientSpki)});
        let wrongEpoch = "unwrapped";
        try { await e2e.unwrapKey(pythonWrap, 4, {privateKey: own, spki: bytesOf(recipientSpki)}); }
        catch (error) { wrongEpoch = error.message; }
        const scanner = await e2e.newKeyPair();
        const sas = await e2e.verificationCode(scanner.privateKey, bytesOf(showerSpki), bytesOf(showerSpki), scanner.spki);
        const recovery = await e2e.newRecovery();
        const item = await e2e.newItemKey(ikm, 5);
        const opened = await e2e.openKeyBlob(item.keyBlob, async (epoch) => epoch === 5 ? ikm : null);
        const meta = await e2e.sealMeta(item.key, {kind: "file", size: 3, name: "a.txt", mime: "text/plain"});
        return {
            ikm: b64Of(ikm), wrap, unwrapped: b64Of(unwrapped), wrongEpoch,
            code: await e2e.pairingCode(bytesOf(showerSpki)),
            scannerSpki: b64Of(scanner.spki), sas,
            recoveryText: e2e.formatRecoveryKey(recovery.recovery), recovery: b64Of(recovery.recovery),
            recoverySpki: b64Of(recovery.spki), sealed: e2e.toB64u(recovery.sealed),
            keyBlob: item.keyBlob, itemKey: b64Of(item.key), itemId: item.id, opened: b64Of(opened.key), meta,
            attest: await e2e.attest(ikm, "session:12", "QUJD"),
        };
    }""", [b64(account_key), user_id, b64(recipient_spki), b64(shower_spki), python_wrap,
           b64(recipient.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))])
    ikm = ref.items_ikm(account_key, user_id)
    assert base64.b64decode(out["ikm"]) == ikm
    assert ref.unwrap(out["wrap"], 5, recipient) == account_key  # the browser's wrap opens in Python
    assert base64.b64decode(out["unwrapped"]) == account_key  # and Python's in the browser
    assert "not for this device" in out["wrongEpoch"]  # the epoch is bound in the AAD
    assert out["code"] == ref.pairing_code(shower_spki)
    assert out["sas"] == ref.sas(shower, base64.b64decode(out["scannerSpki"]), shower_spki,
                                 base64.b64decode(out["scannerSpki"]))
    assert re.fullmatch(r"[0-9]{3} [0-9]{3}", out["sas"])
    # The recovery key as printed gives back R, and R opens the sealed recovery private key.
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){12}[0-9A-HJKMNP-TV-Z]{4}", out["recoveryText"])
    recovery = ref.parse_recovery_key(out["recoveryText"])
    assert recovery == base64.b64decode(out["recovery"])
    opened = ref.open_recovery(recovery, out["sealed"])
    assert ref.spki(opened.public_key()) == base64.b64decode(out["recoverySpki"])
    key_blob = ref.unb64u(out["keyBlob"])
    assert ref.keyid(key_blob) == "5"
    plain = __import__("json").loads(ref.decrypt(ikm, key_blob))
    assert ref.unb64u(plain["key"]) == base64.b64decode(out["itemKey"]) == base64.b64decode(out["opened"])
    assert re.fullmatch(r"[0-9a-f]{32}", plain["id"]) and plain["id"] == out["itemId"]
    meta = __import__("json").loads(ref.decrypt(base64.b64decode(out["itemKey"]), ref.unb64u(out["meta"])))
    assert meta == {"v": 1, "kind": "file", "size": 3, "name": "a.txt", "mime": "text/plain"}
    assert out["attest"] == ref.attest(ikm, "session:12", "QUJD")
