// Same-origin calls to the server's JSON API. Errors carry the server's
// {"error", "message"} so the app can show the message as it is.

import {currentVault} from "./e2e/current.js";
import {encryptedHeaders} from "./e2e/headers.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A network failure (offline, server down), as opposed to an answer. */
export class NetworkError extends Error {}

/** An upload the person cancelled (upload.js, resumable-upload.js). */
export class UploadCancelled extends Error {
  constructor() {
    super("Upload cancelled.");
    this.name = "UploadCancelled";
  }
}

export async function request(url, options = {}) {
  const headers = {Accept: "application/json", ...(options.headers || {})};
  let response;
  try {
    response = await fetch(url, {credentials: "same-origin", ...options, headers});
  } catch (error) {
    throw new NetworkError(navigator.onLine ? "The server cannot be reached." : "You are offline.");
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent("cloudbuffer:logged-out"));
  }
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, body.error || "error", body.message || `The server answered ${response.status}.`);
  }
  return response;
}

export async function requestJSON(url, options = {}) {
  const response = await request(url, options);
  return response.status === 204 ? null : response.json();
}

export async function sendText(text) {
  const vault = currentVault();
  if (vault) {
    // An encrypted account: the text leaves this device only as ciphertext.
    const blobs = await vault.encryptText(text);
    return requestJSON("/file/buffer", {method: "POST", headers: encryptedHeaders(blobs, "text"), body: blobs.body});
  }
  return requestJSON("/file/buffer", {
    method: "POST",
    headers: {"X-Data-Type": "text", "Content-Type": "text/plain; charset=utf-8"},
    body: text,
  });
}

/** The history; with `q` and `kind`, the server's search over it. */
export function listItems({q = "", kind = ""} = {}) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (kind) params.set("kind", kind);
  const query = params.toString();
  return requestJSON(`/file/buffer/items${query ? `?${query}` : ""}`).then((body) => body.items);
}

export async function itemText(id) {
  const response = await request(`/file/buffer/items/${id}`, {headers: {Accept: "text/plain"}});
  return response.text();
}

export function deleteItem(id) {
  return requestJSON(`/file/buffer/items/${id}`, {method: "DELETE"});
}

/** The item's live link, or a new one; {new: true, expiresIn, maxDownloads, password} always makes a new one. */
export function shareItem(id, {new: makeNew = false, expiresIn, maxDownloads, password} = {}) {
  const body = makeNew ? {new: true, expires_in: expiresIn} : {};
  if (makeNew && maxDownloads) body.max_downloads = maxDownloads;
  if (makeNew && password) body.password = password;
  return requestJSON(`/file/buffer/items/${id}/share`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
}

export const itemURL = (id) => `/file/buffer/items/${id}`;

/** The QR image of a share, same-origin whatever PUBLIC_URL is (the CSP allows only 'self'). */
export const qrURL = (token) => `/file/qr?token=${encodeURIComponent(token)}`;
