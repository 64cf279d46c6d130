// The keys of an encrypted account, as docs/e2e.md defines them: the
// user-bound IKM of an epoch, item keys and their key and meta blobs, wraps
// of an account key to a P-256 public key, the pairing code and the
// verification code (SAS), the recovery key and device attestations.
// WebCrypto only.
import {concat, fromB64u, toB64u, utf8} from "./b64u.js";
import {decryptBytes, encryptBytes} from "./ece.js";

const ECDH = {name: "ECDH", namedCurve: "P-256"};
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export async function hkdf(ikm, salt, info, length) {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({name: "HKDF", hash: "SHA-256", salt, info}, base, length * 8);
  return new Uint8Array(bits);
}

export const randomBytes = (count) => crypto.getRandomValues(new Uint8Array(count));

/** IKM_e: the account key of an epoch bound to its account. */
export function itemsIKM(accountKey, userId) {
  return hkdf(accountKey, utf8("cloudbuffer-e2e-v1"), utf8(`items user ${userId}`), 32);
}

// --- item keys, key blobs, meta blobs -----------------------------------------

export const META_MAX_B64U = 6144; // docs/e2e.md: the meta blob travels in a header

function randomHex(bytes) {
  return [...randomBytes(bytes)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A new item: its key, and the key blob that wraps it under IKM_e. */
export async function newItemKey(ikm, epoch) {
  const key = randomBytes(16);
  const plain = {v: 1, key: toB64u(key), id: randomHex(16), created: Date.now()};
  const blob = await encryptBytes(ikm, utf8(JSON.stringify(plain)), {keyid: String(epoch)});
  return {key, id: plain.id, keyBlob: toB64u(blob)};
}

/** {key, id, created, epoch} from a key blob; `ikmFor(epoch)` gives IKM_e. */
export async function openKeyBlob(b64u, ikmFor) {
  const bytes = fromB64u(b64u);
  const keyid = bytes.length > 21 ? new TextDecoder().decode(bytes.subarray(21, 21 + bytes[20])) : "";
  const epoch = Number(keyid);
  if (!Number.isInteger(epoch) || epoch < 1) throw new Error("This item's key blob names no epoch.");
  const ikm = await ikmFor(epoch);
  if (!ikm) throw new Error(`This device does not have the account key of epoch ${epoch}.`);
  const plain = JSON.parse(new TextDecoder().decode(await decryptBytes(ikm, bytes, {expectKeyid: keyid})));
  if (plain.v !== 1 || typeof plain.key !== "string") throw new Error("Unknown key blob.");
  return {key: fromB64u(plain.key), id: plain.id, created: plain.created, epoch};
}

export async function sealMeta(itemKey, meta) {
  const blob = toB64u(await encryptBytes(itemKey, utf8(JSON.stringify({v: 1, ...meta}))));
  if (blob.length > META_MAX_B64U) throw new RangeError("meta blob too large");
  return blob;
}

export async function openMeta(itemKey, b64u) {
  const meta = JSON.parse(new TextDecoder().decode(await decryptBytes(itemKey, fromB64u(b64u))));
  if (meta.v !== 1) throw new Error("Unknown meta blob.");
  return meta;
}

// --- P-256 keys and wraps ---------------------------------------------------------

/** A new P-256 key pair: {privateKey (not extractable), spki (bytes)}. */
export async function newKeyPair() {
  const pair = await crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return {privateKey: pair.privateKey, spki};
}

export const importPublic = (spki) => crypto.subtle.importKey("spki", spki, ECDH, true, []);

async function ecdh(privateKey, peerSpki) {
  const peer = await importPublic(peerSpki);
  return new Uint8Array(await crypto.subtle.deriveBits({name: "ECDH", public: peer}, privateKey, 256));
}

const wrapAAD = (epoch) => utf8(`cloudbuffer wrap v1 epoch ${epoch}`);

/**
 * The account key of `epoch` wrapped to the P-256 public key `spki`. A
 * pairing passes its own key pair as `ephemeral` ({privateKey, spki}), so
 * the wrap's first part is the key the verification code covered.
 */
export async function wrapKey(accountKey, epoch, spki, ephemeral = null) {
  ephemeral ||= await newKeyPair();
  const secret = await ecdh(ephemeral.privateKey, spki);
  const w = await hkdf(secret, concat(ephemeral.spki, spki), utf8("cloudbuffer wrap v1"), 32);
  const aes = await crypto.subtle.importKey("raw", w, "AES-GCM", false, ["encrypt"]);
  const nonce = randomBytes(12);
  const sealed = await crypto.subtle.encrypt({name: "AES-GCM", iv: nonce, additionalData: wrapAAD(epoch)}, aes, accountKey);
  return `${toB64u(ephemeral.spki)}.${toB64u(nonce)}.${toB64u(new Uint8Array(sealed))}`;
}

/** The SPKI that made a wrap: its first part. */
export function wrapSender(wrap) {
  const parts = String(wrap).split(".");
  if (parts.length !== 3) throw new Error("Not a wrapped key.");
  return fromB64u(parts[0]);
}

/** The account key in a wrap addressed to {privateKey, spki}. */
export async function unwrapKey(wrap, epoch, {privateKey, spki}) {
  const parts = String(wrap).split(".");
  if (parts.length !== 3) throw new Error("Not a wrapped key.");
  const [ephemeralSpki, nonce, sealed] = parts.map(fromB64u);
  const secret = await ecdh(privateKey, ephemeralSpki);
  const w = await hkdf(secret, concat(ephemeralSpki, spki), utf8("cloudbuffer wrap v1"), 32);
  const aes = await crypto.subtle.importKey("raw", w, "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({name: "AES-GCM", iv: nonce, additionalData: wrapAAD(epoch)},
      aes, sealed));
  } catch {
    throw new Error("This wrapped key is not for this device, or was changed.");
  }
}

// --- pairing ---------------------------------------------------------------------

export function crockford(bytes, chars) {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += CROCKFORD[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (out.length < chars && bits > 0) out += CROCKFORD[(buffer << (5 - bits)) & 31];
  return out;
}

/** The pairing code a showing device's key commits to: 10 characters, 50 bits of SHA-256(SPKI). */
export async function pairingCode(spki) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  return crockford(digest.subarray(0, 7), 10);
}

export const normalizeCode = (typed) => String(typed).replace(/[\s-]/g, "").toUpperCase()
  .replace(/[IL]/g, "1").replace(/O/g, "0").replace(/U/g, "V");

/** The six-digit verification code both devices show, as "123 456". */
export async function verificationCode(privateKey, peerSpki, showerSpki, scannerSpki) {
  const secret = await ecdh(privateKey, peerSpki);
  const bytes = await hkdf(secret, concat(showerSpki, scannerSpki), utf8("cloudbuffer sas v1"), 4);
  const first20 = (bytes[0] << 12) | (bytes[1] << 4) | (bytes[2] >> 4);
  const digits = String(first20 % 1_000_000).padStart(6, "0");
  return `${digits.slice(0, 3)} ${digits.slice(3)}`;
}

// --- recovery and attestation ----------------------------------------------------

/** R as 13 groups of 4 Crockford base32 characters. */
export function formatRecoveryKey(bytes) {
  return crockford(bytes, 52).match(/.{1,4}/g).join("-");
}

export function parseRecoveryKey(text) {
  const chars = normalizeCode(text);
  const out = [];
  let buffer = 0;
  let bits = 0;
  for (const char of chars) {
    const value = CROCKFORD.indexOf(char);
    if (value < 0) throw new Error("A recovery key has only letters and digits.");
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >> (bits - 8)) & 255);
      bits -= 8;
      buffer &= (1 << bits) - 1;
    }
  }
  if (out.length !== 32) throw new Error("A recovery key has 52 characters.");
  return new Uint8Array(out);
}

/** A new recovery key R and the recovery key pair sealed under it. */
export async function newRecovery() {
  const recovery = randomBytes(32);
  const pair = await crypto.subtle.generateKey(ECDH, true, ["deriveBits"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const seal = await hkdf(recovery, utf8("cloudbuffer-recovery-v1"), utf8("seal"), 32);
  const aes = await crypto.subtle.importKey("raw", seal, "AES-GCM", false, ["encrypt"]);
  const nonce = randomBytes(12);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({name: "AES-GCM", iv: nonce}, aes, pkcs8));
  return {recovery, spki, sealed: concat(nonce, sealed)};
}

/** The recovery private key from R and the server's sealed copy: {privateKey, spki}. */
export async function openRecovery(recovery, sealedB64u, spkiB64u) {
  const sealed = fromB64u(sealedB64u);
  const seal = await hkdf(recovery, utf8("cloudbuffer-recovery-v1"), utf8("seal"), 32);
  const aes = await crypto.subtle.importKey("raw", seal, "AES-GCM", false, ["decrypt"]);
  let pkcs8;
  try {
    pkcs8 = await crypto.subtle.decrypt({name: "AES-GCM", iv: sealed.subarray(0, 12)}, aes, sealed.subarray(12));
  } catch {
    throw new Error("That recovery key does not open this account's keys.");
  }
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ECDH, false, ["deriveBits"]);
  return {privateKey, spki: fromB64u(spkiB64u)};
}

/** attest = HMAC-SHA256(IKM_e, "device " || device || " " || public_key_b64u). */
export async function attest(ikm, device, publicKeyB64u) {
  const key = await crypto.subtle.importKey("raw", ikm, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
  return toB64u(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(`device ${device} ${publicKeyB64u}`))));
}

/** proof = b64u(HMAC-SHA256(IKM_e, "epoch " || (e+1) || " " || b64u(K_{e+1}))): the next epoch's key vouched for by the last. */
export async function epochProof(previousIKM, epoch, accountKey) {
  const key = await crypto.subtle.importKey("raw", previousIKM, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
  return toB64u(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(`epoch ${epoch} ${toB64u(accountKey)}`))));
}
