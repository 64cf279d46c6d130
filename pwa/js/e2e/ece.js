// RFC 8188 "aes128gcm" content coding, record by record with WebCrypto, so a
// big file is never whole in memory: encryption reads the file a slice at a
// time into Blob parts (which the browser may keep on disk), decryption reads
// the response's stream. Byte-compatible with Python's http_ece
// (tests/browser/test_e2e_crypto.py checks both ways). docs/e2e.md: the
// format's parameters.
import {concat, utf8} from "./b64u.js";

export const RECORD_SIZE = 65536;
const TAG = 16;
export const CHUNK = RECORD_SIZE - TAG - 1; // plaintext bytes per record: 65519
const BATCH = 32; // records encrypted (or decrypted) at once, in parallel: 2 MiB (16 gave 0.33× plaintext in #9, 64 0.51× but JS heaps over 100 MiB for 200 MiB)

export class CiphertextError extends Error {
  constructor(message = "The data cannot be decrypted: it is damaged, or was encrypted under another key.") {
    super(message);
    this.name = "CiphertextError";
  }
}

async function hkdf(ikm, salt, info, bits) {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({name: "HKDF", hash: "SHA-256", salt, info}, base, bits));
}

/** The content-encryption key and base nonce of RFC 8188 §2.2–2.3. */
async function recordKeys(ikm, salt) {
  const cek = await hkdf(ikm, salt, utf8("Content-Encoding: aes128gcm\0"), 128);
  const nonce = await hkdf(ikm, salt, utf8("Content-Encoding: nonce\0"), 96);
  const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["encrypt", "decrypt"]);
  return {key, nonce};
}

/** The record's nonce: the base nonce XOR the record's sequence number (96-bit big-endian). */
function recordNonce(base, seq) {
  const nonce = base.slice();
  let rest = seq;
  for (let i = 11; i >= 0 && rest > 0; i--) {
    nonce[i] ^= rest % 256;
    rest = Math.floor(rest / 256);
  }
  return nonce;
}

export function encodeHeader(salt, rs, keyid) {
  const id = utf8(keyid);
  if (id.length > 255) throw new RangeError("keyid too long");
  const header = new Uint8Array(21 + id.length);
  header.set(salt, 0);
  new DataView(header.buffer).setUint32(16, rs);
  header[20] = id.length;
  header.set(id, 21);
  return header;
}

/** {salt, rs, keyid, length} of a blob's header, or CiphertextError. */
export function parseHeader(bytes) {
  if (bytes.length < 21 || bytes.length < 21 + bytes[20]) throw new CiphertextError("The data is not aes128gcm.");
  const rs = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(16);
  if (rs <= TAG + 1) throw new CiphertextError("The data is not aes128gcm.");
  const length = 21 + bytes[20];
  return {salt: bytes.slice(0, 16), rs, keyid: new TextDecoder().decode(bytes.subarray(21, length)), length};
}

/** Encrypts records in order; `record(chunk, last)` resolves with the ciphertext record. */
export class Encryptor {
  static async create(ikm, {keyid = "", rs = RECORD_SIZE, salt = crypto.getRandomValues(new Uint8Array(16))} = {}) {
    const encryptor = new Encryptor();
    encryptor.keys = await recordKeys(ikm, salt);
    encryptor.header = encodeHeader(salt, rs, keyid);
    encryptor.chunk = rs - TAG - 1;
    encryptor.seq = 0;
    return encryptor;
  }

  async record(chunk, last) {
    if (chunk.length > this.chunk) throw new RangeError("record too long");
    const plain = new Uint8Array(chunk.length + 1);
    plain.set(chunk);
    plain[chunk.length] = last ? 2 : 1;
    const iv = recordNonce(this.keys.nonce, this.seq++);
    return new Uint8Array(await crypto.subtle.encrypt({name: "AES-GCM", iv}, this.keys.key, plain));
  }
}

/** The whole blob of a small value (text, key and meta blobs). */
export async function encryptBytes(ikm, bytes, options = {}) {
  const encryptor = await Encryptor.create(ikm, options);
  const records = [];
  for (let at = 0; at < bytes.length || records.length === 0; at += encryptor.chunk) {
    const end = Math.min(bytes.length, at + encryptor.chunk);
    records.push(await encryptor.record(bytes.subarray(at, end), end >= bytes.length));
  }
  return concat(encryptor.header, ...records);
}

/**
 * A Blob (or File) encrypted into a Blob, BATCH records at a time: only a
 * batch is ever in this page's memory. `onProgress(done, total)` counts
 * plaintext bytes.
 */
export async function encryptBlob(ikm, blob, {keyid = "", onProgress = () => {}, signal} = {}) {
  const encryptor = await Encryptor.create(ikm, {keyid});
  const parts = [encryptor.header];
  const size = blob.size;
  let at = 0;
  do {
    signal?.throwIfAborted();
    const end = Math.min(size, at + BATCH * CHUNK);
    const bytes = new Uint8Array(await blob.slice(at, end).arrayBuffer());
    const jobs = [];
    for (let offset = 0; offset < bytes.length || jobs.length === 0; offset += CHUNK) {
      const chunk = bytes.subarray(offset, Math.min(bytes.length, offset + CHUNK));
      jobs.push(encryptor.record(chunk, at + offset + chunk.length >= size));
    }
    parts.push(new Blob(await Promise.all(jobs)));
    at = end;
    onProgress(at, size);
  } while (at < size);
  return new Blob(parts, {type: "application/octet-stream"});
}

/** Decrypts records in order; the caller says which is the last. */
export class Decryptor {
  static async create(ikm, header) {
    const decryptor = new Decryptor();
    decryptor.header = header;
    decryptor.keys = await recordKeys(ikm, header.salt);
    decryptor.seq = 0;
    return decryptor;
  }

  async record(bytes, last) {
    const iv = recordNonce(this.keys.nonce, this.seq++);
    let plain;
    try {
      plain = new Uint8Array(await crypto.subtle.decrypt({name: "AES-GCM", iv}, this.keys.key, bytes));
    } catch {
      throw new CiphertextError();
    }
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--; // RFC 8188 padding: zeros after the delimiter
    if (end < 0 || plain[end] !== (last ? 2 : 1)) {
      throw new CiphertextError(last ? "The data is cut short." : "The data is damaged: a record ends it too early.");
    }
    return plain.subarray(0, end);
  }
}

/** The plaintext of a whole small blob. `expectKeyid`: the keyid it must carry. */
export async function decryptBytes(ikm, bytes, {expectKeyid = null} = {}) {
  const header = parseHeader(bytes);
  if (expectKeyid !== null && header.keyid !== expectKeyid) throw new CiphertextError("The data is under another key.");
  const decryptor = await Decryptor.create(ikm, header);
  const out = [];
  let at = header.length;
  if (at >= bytes.length) throw new CiphertextError("The data is cut short.");
  while (at < bytes.length) {
    const end = Math.min(bytes.length, at + header.rs);
    out.push(await decryptor.record(bytes.subarray(at, end), end >= bytes.length));
    at = end;
  }
  return concat(...out);
}

/**
 * A stream of ciphertext (a fetch Response's body) decrypted into a Blob as
 * it arrives: a record is decrypted as soon as it and the start of the next
 * are in (the last record is the one the stream ends with).
 * `ikmFor(header)` resolves with the IKM for the blob's header.
 */
export async function decryptStream(stream, ikmFor, {type = "application/octet-stream", onProgress = () => {}} = {}) {
  const reader = stream.getReader();
  let pending = []; // Uint8Arrays not yet decrypted
  let pendingBytes = 0;
  let received = 0;
  let decryptor = null;
  const parts = [];
  let jobs = [];

  const take = (count) => {
    const out = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const head = pending[0];
      const used = Math.min(head.length, count - filled);
      out.set(head.subarray(0, used), filled);
      filled += used;
      if (used === head.length) pending.shift();
      else pending[0] = head.subarray(used);
    }
    pendingBytes -= count;
    return out;
  };
  const flushJobs = async () => {
    if (jobs.length) parts.push(new Blob(await Promise.all(jobs)));
    jobs = [];
  };

  for (;;) {
    const {value, done} = await reader.read();
    if (value) {
      pending.push(value);
      pendingBytes += value.length;
      received += value.length;
      onProgress(received);
    }
    if (!decryptor && (pendingBytes >= 21 || done)) {
      const first = concat(...pending);
      if (first.length < 21 || first.length < 21 + first[20]) {
        if (done) throw new CiphertextError("The data is not aes128gcm.");
        pending = [first];
        continue;
      }
      const header = parseHeader(first);
      pending = [first];
      take(header.length);
      decryptor = await Decryptor.create(await ikmFor(header), header);
    }
    if (decryptor) {
      const rs = decryptor.header.rs;
      // Keep at least one byte past a full record: only the end says which record is last.
      while (pendingBytes > rs) {
        jobs.push(decryptor.record(take(rs), false));
        if (jobs.length >= BATCH) await flushJobs();
      }
      if (done) {
        if (pendingBytes === 0) throw new CiphertextError("The data is cut short.");
        jobs.push(decryptor.record(take(pendingBytes), true));
        await flushJobs();
        return new Blob(parts, {type});
      }
    }
    if (done) throw new CiphertextError("The data is cut short.");
  }
}
