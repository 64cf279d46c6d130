// File uploads with XMLHttpRequest, because fetch() still cannot report
// upload progress everywhere. Used by the app (raw body to /file/buffer) and
// by the upload page (multipart to /file/load). Files from
// resumableThreshold() on go over tus instead (resumable-upload.js), which
// survives a dropped connection and a reload.
import {ApiError, NetworkError, UploadCancelled} from "./api.js";
import {resumableThreshold, resumableUpload} from "./resumable-upload.js";
import {currentVault} from "./e2e/current.js";
import {ENCRYPTED, encryptedHeaders} from "./e2e/headers.js";
import {randomBytes} from "./e2e/keys.js";
import {toB64u} from "./e2e/b64u.js";

export {UploadCancelled};

/**
 * Starts an upload; returns {promise, abort}. The promise resolves with the
 * server's JSON answer and rejects with ApiError, NetworkError or UploadCancelled.
 *   target: "buffer" — the file is the raw body of POST /file/buffer
 *           "share"  — multipart POST /file/load, for a share link
 *   shareOptions: a link's expires_in, max_downloads, burn, password (strings;
 *           sent as tus metadata when the file goes over tus)
 *   onResuming(), onWaiting(): a tus upload continues where the server has
 *           it / waits for the network to come back
 */
export function uploadFile(file, {target = "buffer", shareOptions = {}, onProgress = () => {}, onEncrypting = () => {},
  onResuming = () => {}, onWaiting = () => {}} = {}) {
  const vault = currentVault();
  const tus = {onResuming, onWaiting};
  if (vault) return uploadEncrypted(vault, file, {target, shareOptions, onProgress, onEncrypting, tus});
  if (file.size >= resumableThreshold()) {
    return resumableUpload(file, {size: file.size, onProgress, ...tus,
      metadata: {filename: file.name || "file", filetype: file.type || "application/octet-stream", target,
        ...linkMetadata(target, shareOptions)}});
  }
  const xhr = new XMLHttpRequest();
  const promise = send(xhr, file, {target, onProgress, body: file, fields: linkMetadata(target, shareOptions)});
  return {promise, abort: () => xhr.abort()};
}

/**
 * An encrypted account: the file is encrypted record by record into a Blob
 * (Chromium cannot stream a request body over HTTP/1.1; Blob parts may live
 * on disk, so the page holds one batch of records at a time), then sent.
 * A share link gets a fresh item key, which goes in the link's #fragment.
 */
function uploadEncrypted(vault, file, {target, shareOptions, onProgress, onEncrypting, tus}) {
  const xhr = new XMLHttpRequest();
  const controller = new AbortController();
  let resumable = null;
  const promise = (async () => {
    const itemKey = target === "share" ? randomBytes(16) : null;
    let blobs;
    try {
      blobs = await vault.encryptFile(file, {itemKey, signal: controller.signal,
        onProgress: (done, total) => onEncrypting(done, total)});
    } catch (error) {
      if (controller.signal.aborted) throw new UploadCancelled();
      throw error;
    }
    if (controller.signal.aborted) throw new UploadCancelled();
    let answer;
    const options = linkMetadata(target, shareOptions);
    // A password travels only in a body (never an address), and an encrypted
    // POST's body is the ciphertext: such a link goes over tus, whose
    // metadata carries it, whatever the file's size.
    if (file.size >= resumableThreshold() || options.password) {
      // The same blobs as the headers of a POST, as tus metadata; no name or
      // type in the clear (they are in `meta`). Within this page a drop
      // resumes; after a reload the file is encrypted anew, and so uploaded
      // anew (docs/pwa.md).
      const metadata = {encrypted: ENCRYPTED, meta: blobs.meta, target, ...linkMetadata(target, shareOptions)};
      if (blobs.keyBlob) metadata.key = blobs.keyBlob;
      resumable = resumableUpload(blobs.body, {size: file.size, metadata, encrypted: true, onProgress, ...tus});
      answer = await resumable.promise;
    } else {
      answer = await send(xhr, file, {target, onProgress, body: blobs.body, headers: encryptedHeaders(blobs, "file"),
        query: options});
    }
    if (itemKey) answer.url = `${answer.url}#k=${toB64u(itemKey)}`;
    return answer;
  })();
  return {promise, abort: () => { controller.abort(); xhr.abort(); resumable?.abort(); }};
}

/** A share link's options as tus metadata (names of server/blueprints/uploads.py). */
function linkMetadata(target, options) {
  if (target !== "share") return {};
  const metadata = {};
  for (const name of ["expires_in", "max_downloads", "burn", "password"]) {
    if (options[name] !== undefined && options[name] !== null && options[name] !== "") metadata[name] = String(options[name]);
  }
  return metadata;
}

/** fields: a plaintext link's options, as form fields; query: an encrypted one's (no password), in the address. */
function send(xhr, file, {target, onProgress, body, headers = null, fields = {}, query = {}}) {
  return new Promise((resolve, reject) => {
    const search = new URLSearchParams(query).toString();
    xhr.open("POST", target === "share" ? `/file/load${search ? `?${search}` : ""}` : "/file/buffer");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      // Encrypted bodies are a little longer than the file: progress counts the file's bytes.
      if (event.lengthComputable) onProgress(Math.min(file.size, Math.round(file.size * event.loaded / event.total)), file.size);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size, file.size);
        resolve(body);
      } else {
        if (xhr.status === 401) window.dispatchEvent(new CustomEvent("cloudbuffer:logged-out"));
        reject(new ApiError(xhr.status, body.error || "error", body.message || `The server answered ${xhr.status}.`));
      }
    });
    xhr.addEventListener("error", () => reject(new NetworkError(
      navigator.onLine ? "The upload was interrupted." : "You are offline.")));
    xhr.addEventListener("abort", () => reject(new UploadCancelled()));
    if (headers) {
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.send(body);
    } else if (target === "share") {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      form.append("file", file, file.name);
      xhr.send(form);
    } else {
      xhr.setRequestHeader("X-Data-Type", "file");
      xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name || "file"));
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.send(file);
    }
  });
}
