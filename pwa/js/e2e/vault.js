// An encrypted account on this device (docs/e2e.md): its account keys by
// epoch, turning encryption on, and encrypting and decrypting items. The
// keys come from the key store (IndexedDB) and from the wraps the server
// holds for this device's key; decrypted item keys stay in memory only.
import {NetworkError, request, requestJSON} from "../api.js";
import {fromB64u, toB64u, utf8} from "./b64u.js";
import {decryptBytes, encryptBlob, encryptBytes} from "./ece.js";
import {forgetAccount, forgetSeen, loadAccount, loadSeen, rememberSeen, saveAccount} from "./keystore.js";
import {
  META_MAX_B64U, attest, epochProof, formatRecoveryKey, itemsIKM, newItemKey, newKeyPair, newRecovery, openKeyBlob, openMeta,
  randomBytes, sealMeta, unwrapKey, wrapKey,
} from "./keys.js";
import {thumbnail} from "./thumbnail.js";
import {fetchDecrypted} from "./ranged.js";

export {ENCRYPTED, encryptedHeaders} from "./headers.js";
import {ENCRYPTED} from "./headers.js";

export class KeyMissingError extends Error {}

const MAX_SEEN = 5000; // as the CLI's: far beyond any history; older ids fall off
const SEEN_SAVE_MS = 100; // the ids of a history drawn at once are stored in one write


/** The account's key state from the server; null offline. */
async function keyState() {
  try {
    return await requestJSON("/account/e2e");
  } catch (error) {
    if (error instanceof NetworkError) return null;
    throw error;
  }
}

/** The keys of `wraps` ([{epoch, blob}]) that `owner` ({privateKey, spki}) can open. */
export async function unwrapAll(wraps, owner, keys = {}) {
  for (const {epoch, blob} of wraps || []) {
    if (keys[epoch]) continue;
    try {
      keys[epoch] = await unwrapKey(blob, epoch, owner);
    } catch {
      // A wrap this device cannot open (not addressed to it): the others may do.
    }
  }
  return keys;
}

/**
 * Keys of the server's wraps for this device, each new epoch accepted only
 * if its proof verifies under the key of the epoch before (docs/e2e.md): a
 * wrap alone proves nothing, since the server can wrap a key of its own to
 * any public key. The first epoch has no proof; it is taken only by a
 * device that holds no key yet.
 */
async function acceptWraps(state, record) {
  const proofs = new Map((state.epochs || []).map(({epoch, proof}) => [epoch, proof]));
  const wraps = [...(state.wraps || [])].sort((a, b) => a.epoch - b.epoch);
  for (const wrap of wraps) {
    if (record.keys[wrap.epoch]) continue;
    const [key] = Object.values(await unwrapAll([wrap], record.device));
    if (!key) continue;
    if (wrap.epoch === 1 || !Object.keys(record.keys).length) {
      if (wrap.epoch === 1 || !proofs.has(wrap.epoch)) record.keys[wrap.epoch] = key;
      continue;
    }
    const previous = record.keys[wrap.epoch - 1];
    if (!previous) continue;
    const expected = await epochProof(await itemsIKM(previous, record.userId), wrap.epoch, key);
    if (proofs.get(wrap.epoch) === expected) record.keys[wrap.epoch] = key;
  }
}

/**
 * The vault of `username` on this device, or null when the account is not
 * encrypted. Online it asks the server (and learns keys from new wraps);
 * offline it trusts the key store.
 */
export async function openVault(username, userId) {
  const state = navigator.onLine ? await keyState().catch(() => null) : null;
  let record = await loadAccount(username);
  if (state && !state.enabled) {
    if (record) await forgetAccount(username);
    await forgetSeen(username).catch(() => null);
    return null;
  }
  if (!state && !record?.enabled) return null;
  record ||= {username, userId, keys: {}, device: null};
  record.userId = userId;
  if (state) {
    record.enabled = true;
    record.epoch = state.epoch;
    record.self = state.device;
    if (record.device) await acceptWraps(state, record);
    await saveAccount(record);
  }
  const seen = await loadSeen(username).catch(() => new Map());
  return new Vault(record, state, seen);
}

export class Vault {
  constructor(record, state, seen = new Map()) {
    this.record = record;
    this.state = state;
    this.ikms = new Map(); // epoch → IKM_e
    this.opened = new Map(); // key blob → {key, id, created, epoch}
    this.seen = seen; // item id (in the key blob) → seq: a repeat under another seq is a replay
    this.unsaved = []; // [[id, seq]] not yet in IndexedDB
    this.saveTimer = null;
  }

  /** Notes an id seen under `seq`, and stores it shortly (keystore.js), so a reload still knows it. */
  remember(id, seq) {
    this.seen.set(id, seq);
    this.unsaved.push([id, seq]);
    this.saveTimer ||= setTimeout(() => this.saveSeen(), SEEN_SAVE_MS);
  }

  async saveSeen() {
    this.saveTimer = null;
    const entries = this.unsaved.splice(0);
    if (!entries.length) return;
    try {
      await rememberSeen(this.record.username, entries, MAX_SEEN);
    } catch {
      // Storage refused (full, private mode): this page still knows them.
    }
  }

  get epoch() {
    return this.record.epoch;
  }

  /** This device holds the current epoch's key: it can write. */
  get canWrite() {
    return Boolean(this.record.keys[this.record.epoch]);
  }

  async ikmFor(epoch) {
    if (!this.record.keys[epoch]) return null;
    if (!this.ikms.has(epoch)) this.ikms.set(epoch, await itemsIKM(this.record.keys[epoch], this.record.userId));
    return this.ikms.get(epoch);
  }

  async writeKey() {
    const ikm = await this.ikmFor(this.epoch);
    if (!ikm) throw new KeyMissingError("This device does not have your buffer's key: add it from a device that has.");
    return newItemKey(ikm, this.epoch);
  }

  // --- writing ------------------------------------------------------------------

  /** A text as its three blobs: {keyBlob, meta, body (bytes)}. */
  async encryptText(text) {
    const bytes = utf8(text);
    const {key, keyBlob} = await this.writeKey();
    const meta = await sealMeta(key, {kind: "text", size: bytes.length});
    return {keyBlob, meta, body: await encryptBytes(key, bytes)};
  }

  /** A file as its three blobs: {keyBlob, meta, body (a Blob)}; `itemKey` for share links (no key blob). */
  async encryptFile(file, {onProgress, signal, itemKey = null} = {}) {
    const made = itemKey ? {key: itemKey, keyBlob: null} : await this.writeKey();
    const fields = {kind: "file", size: file.size, name: file.name || "file", mime: file.type || "application/octet-stream"};
    const preview = await thumbnail(file);
    let meta = null;
    if (preview) {
      try {
        meta = await sealMeta(made.key, {...fields, preview});
      } catch (error) {
        if (!(error instanceof RangeError)) throw error; // too big for a header: no preview then
      }
    }
    meta ||= await sealMeta(made.key, fields);
    const body = await encryptBlob(made.key, file, {onProgress, signal});
    return {keyBlob: made.keyBlob, meta, body, key: made.key};
  }

  // --- reading ------------------------------------------------------------------

  async openKey(keyBlob) {
    if (!this.opened.has(keyBlob)) {
      this.opened.set(keyBlob, openKeyBlob(keyBlob, (epoch) => this.ikmFor(epoch)));
    }
    try {
      return await this.opened.get(keyBlob);
    } catch (error) {
      this.opened.delete(keyBlob);
      throw error;
    }
  }

  /**
   * An encrypted item (of the history or a `buffer` message) with what it
   * hides: filename, mime, size, preview, plus `replayed` when its id came
   * before under another seq. Items this device cannot open are marked
   * `locked`.
   */
  async reveal(item) {
    if (item.encrypted !== ENCRYPTED) return item;
    try {
      const opened = await this.openKey(item.key);
      const meta = await openMeta(opened.key, item.meta);
      const seq = item.seq;
      const before = this.seen.get(opened.id);
      if (before === undefined && seq !== undefined) this.remember(opened.id, seq);
      const shown = {...item, size: meta.size, filename: meta.name, mime: meta.mime, preview: meta.preview || null,
        created_ms: opened.created, replayed: before !== undefined && seq !== undefined && before !== seq};
      if ((item.kind || item.type) === "text" && typeof item.ciphertext === "string") {
        shown.text = new TextDecoder().decode(await decryptBytes(opened.key, fromB64u(item.ciphertext)));
      }
      delete shown.ciphertext;
      return shown;
    } catch (error) {
      return {...item, filename: "Encrypted item", mime: "", locked: error.message || String(error)};
    }
  }

  /** The item's plaintext as a Blob, decrypted a few records at a time. */
  async fetchPlain(url, keyBlob, {type, onProgress} = {}) {
    const {key} = await this.openKey(keyBlob);
    return fetchDecrypted((range) => request(url, {headers: {Accept: "application/octet-stream", Range: range}}), key,
      {type, onProgress});
  }

  async fetchText(url, keyBlob) {
    return (await this.fetchPlain(url, keyBlob)).text();
  }

  // --- keys of other devices --------------------------------------------------------

  /**
   * Wraps of every epoch's key to a P-256 public key, for pairing: [{epoch, blob}].
   * `pairingKeys` ({privateKey, spki}) is this device's key of the exchange,
   * the wraps' "ephemeral" key (docs/e2e.md): the new device checks it.
   */
  async wrapsFor(spki, pairingKeys) {
    const wraps = [];
    for (const [epoch, key] of Object.entries(this.record.keys)) {
      wraps.push({epoch: Number(epoch), blob: await wrapKey(key, Number(epoch), spki, pairingKeys)});
    }
    return wraps;
  }

  /**
   * A new epoch after a device was revoked: a new account key wrapped to
   * every remaining registered device whose registration an enrolled
   * device attested, and to the recovery key.
   */
  async rotate() {
    const state = await requestJSON("/account/e2e");
    if (!state.enabled || !state.rotation_needed) return false;
    const next = state.epoch + 1;
    const key = randomBytes(32);
    const wraps = [];
    for (const device of state.devices) {
      if (!(await this.attested(device))) continue; // the server cannot slip a key of its own in
      wraps.push({recipient: device.device, blob: await wrapKey(key, next, fromB64u(device.public_key))});
    }
    wraps.push({recipient: "recovery", blob: await wrapKey(key, next, fromB64u(state.recovery.public_key))});
    const current = await this.ikmFor(state.epoch);
    if (!current) throw new KeyMissingError("This device does not have the current key: it cannot make the next.");
    const proof = await epochProof(current, next, key);
    await requestJSON("/account/e2e/epochs", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({epoch: next, proof, wraps})});
    this.record.keys[next] = key;
    this.record.epoch = next;
    await saveAccount(this.record);
    return true;
  }

  async attested(device) {
    for (const epoch of Object.keys(this.record.keys)) {
      const ikm = await this.ikmFor(Number(epoch));
      if (await attest(ikm, device.device, device.public_key) === device.attest) return true;
    }
    return false;
  }

  /** Learn new epochs from the server (after an `e2e` message). */
  async refresh() {
    const state = await requestJSON("/account/e2e");
    if (!state.enabled) return false;
    this.state = state;
    this.record.epoch = state.epoch;
    if (this.record.device) await acceptWraps(state, this.record);
    await saveAccount(this.record);
    return true;
  }
}

/**
 * This device keeps `keys` ({epoch: key}) and registers a long-lived device
 * key with the server, with its own wraps (a paired device).
 */
export async function enrollDevice(username, userId, keys) {
  const state = await requestJSON("/account/e2e");
  const device = await newKeyPair();
  const publicKey = toB64u(device.spki);
  const ikm = await itemsIKM(keys[state.epoch], userId);
  const wraps = [];
  for (const [epoch, key] of Object.entries(keys)) {
    wraps.push({epoch: Number(epoch), blob: await wrapKey(key, Number(epoch), device.spki)});
  }
  await requestJSON("/account/e2e/device", {method: "PUT", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({public_key: publicKey, attest: await attest(ikm, state.device, publicKey), wraps})});
  await saveAccount({username, userId, keys, device, enabled: true, epoch: state.epoch, self: state.device});
}

/**
 * "Encrypt my buffer": epoch 1 on this device. Resolves with the recovery
 * key as it is to be shown (once).
 */
export async function enableEncryption(username, userId, password) {
  const state = await requestJSON("/account/e2e");
  const accountKey = randomBytes(32);
  const device = await newKeyPair();
  const recovery = await newRecovery();
  const ikm = await itemsIKM(accountKey, userId);
  const publicKey = toB64u(device.spki);
  const body = {
    password,
    recovery: {public_key: toB64u(recovery.spki), sealed_private_key: toB64u(recovery.sealed)},
    device: {public_key: publicKey, attest: await attest(ikm, state.device, publicKey)},
    wraps: [
      {recipient: "self", epoch: 1, blob: await wrapKey(accountKey, 1, device.spki)},
      {recipient: "recovery", epoch: 1, blob: await wrapKey(accountKey, 1, recovery.spki)},
    ],
  };
  await requestJSON("/account/e2e/enable", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body)});
  await saveAccount({username, userId, keys: {1: accountKey}, device, enabled: true, epoch: 1, self: state.device});
  return formatRecoveryKey(recovery.recovery);
}

export {META_MAX_B64U};
