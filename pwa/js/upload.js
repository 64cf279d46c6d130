// File uploads with XMLHttpRequest, because fetch() still cannot report
// upload progress everywhere. Used by the app (raw body to /file/buffer) and
// by the upload page (multipart to /file/load).
import {ApiError, NetworkError} from "./api.js";

export class UploadCancelled extends Error {
  constructor() {
    super("Upload cancelled.");
    this.name = "UploadCancelled";
  }
}

/**
 * Starts an upload; returns {promise, abort}. The promise resolves with the
 * server's JSON answer and rejects with ApiError, NetworkError or UploadCancelled.
 *   target: "buffer" — the file is the raw body of POST /file/buffer
 *           "share"  — multipart POST /file/load, for a share link
 */
export function uploadFile(file, {target = "buffer", onProgress = () => {}} = {}) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", target === "share" ? "/file/load" : "/file/buffer");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
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
    if (target === "share") {
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    } else {
      xhr.setRequestHeader("X-Data-Type", "file");
      xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name || "file"));
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.send(file);
    }
  });
  return {promise, abort: () => xhr.abort()};
}
