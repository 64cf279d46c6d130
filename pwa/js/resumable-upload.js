// Big files over tus 1.0.0 (POST/HEAD/PATCH/DELETE /file/uploads, docs/api.md)
// with tus-js-client, vendored unchanged in vendor/tus.min.js (a UMD bundle:
// imported for its effect, it sets window.tus). What it gives: PATCHes of
// CHUNK_BYTES, retries with backoff, and a resume from the server's offset
// (HEAD) after a drop or, through the IndexedDB store of tus-url-store.js,
// after a reload when the same file (name, type, size, modification time)
// is sent again. Small files keep the single POST of upload.js.
import "./vendor/tus.min.js";
import {ApiError, NetworkError, requestJSON, UploadCancelled} from "./api.js";
import {urlStorage} from "./tus-url-store.js";

const {Upload} = window.tus;

/** Files from this size on go over tus. */
export const RESUMABLE_FROM = 32 * 1024 * 1024;
const CHUNK_BYTES = 8 * 1024 * 1024;
// tus-js-client's backoff between tries of one request; after the last one
// the upload waits for the browser to be online again (see onError).
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];
const ENDPOINT = new URL("/file/uploads", location.href).href;
// An encrypted upload's ciphertext is new each time (fresh record keys and
// nonces), so its stored address is never resumed after a reload: it is
// marked, and the next encrypted upload ends such leftovers on the server
// instead of letting them hold quota until they expire.
const ENCRYPTED_PREFIX = "encrypted-";
const ownEncrypted = new Set();

/** The threshold; <html data-resumable-from="bytes"> lowers it (the browser
 * tests do, to see tus at work without uploading 32 MiB each time). */
export function resumableThreshold() {
  const set = Number(document.documentElement.dataset.resumableFrom);
  return set > 0 ? set : RESUMABLE_FROM;
}

/**
 * Sends `body` (the file, or an encrypted account's ciphertext Blob) over tus;
 * returns {promise, abort}. The promise resolves with what the upload became:
 * the item (target "buffer") or the share link's JSON (target "share").
 * `size` is what progress counts (the file's bytes, not the ciphertext's).
 */
export function resumableUpload(body, {size, metadata, encrypted = false, onProgress = () => {},
  onResuming = () => {}, onWaiting = () => {}}) {
  let upload = null;
  let cancelled = false;
  let rejectCancelled = null;
  const fingerprint = encrypted ? `${ENCRYPTED_PREFIX}${crypto.randomUUID()}` : null;
  if (fingerprint) ownEncrypted.add(fingerprint);

  const promise = new Promise((resolve, reject) => {
    rejectCancelled = reject;
    const options = {
      endpoint: ENDPOINT,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      metadata,
      urlStorage,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress(sent, total) {
        onProgress(Math.min(size, Math.round(size * sent / (total || 1))), size);
      },
      async onSuccess() {
        try {
          const state = await requestJSON(upload.url);
          onProgress(size, size);
          resolve(state.item || state.share);
        } catch (error) {
          reject(error);
        }
      },
      onError(error) {
        if (cancelled) return;
        const response = error.originalResponse;
        const status = response ? response.getStatus() : 0;
        if (!status && !navigator.onLine) {
          // Offline (tus-js-client does not retry then): go on from the
          // server's offset as soon as the browser is back online.
          onWaiting();
          window.addEventListener("online", () => { if (!cancelled) upload.start(); }, {once: true});
          return;
        }
        if (!status) {
          reject(new NetworkError("The upload was interrupted."));
          return;
        }
        let answer = {};
        try { answer = JSON.parse(response.getBody() || "{}"); } catch { /* not JSON */ }
        if (status === 401) window.dispatchEvent(new CustomEvent("cloudbuffer:logged-out"));
        reject(new ApiError(status, answer.error || "error", answer.message || `The server answered ${status}.`));
      },
    };
    if (fingerprint) options.fingerprint = async () => fingerprint;
    upload = new Upload(body, options);
    (async () => {
      if (encrypted) endStaleEncrypted();
      else {
        const previous = await upload.findPreviousUploads().catch(() => []);
        if (previous.length) {
          upload.resumeFromPreviousUpload(previous[0]);
          onResuming();
        }
      }
      if (!cancelled) upload.start();
    })();
  });

  const abort = () => {
    if (cancelled) return;
    cancelled = true;
    // abort(true) is tus termination: DELETE, so the server frees the bytes at once.
    upload.abort(true).catch(() => {}).finally(() => rejectCancelled(new UploadCancelled()));
  };
  return {promise, abort};
}

async function endStaleEncrypted() {
  try {
    for (const previous of await urlStorage.findAllUploads()) {
      if (!previous.fingerprint.startsWith(ENCRYPTED_PREFIX) || ownEncrypted.has(previous.fingerprint)) continue;
      await urlStorage.removeUpload(previous.urlStorageKey);
      if (previous.uploadUrl) await Upload.terminate(previous.uploadUrl, {retryDelays: null}).catch(() => {});
    }
  } catch {
    // Nothing lost: a leftover expires on the server anyway.
  }
}
