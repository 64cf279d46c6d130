// /file/load: drop or pick a file, watch it upload (with Cancel), then get
// the link, its QR code, size and expiry. Without JS the form posts as is.
import {$} from "./dom.js";
import {qrURL} from "./api.js";
import {absoluteTime, formatSize, isoTime, progressText} from "./format.js";
import {uploadFile, UploadCancelled} from "./upload.js";
import "./copy-buttons.js";
import {showFeedback} from "./focus-feedback.js";
import {pageVault} from "./e2e/page.js";
import {qrElement} from "./e2e/qr.js";

// An encrypted account: the file is encrypted here under a fresh key, which
// only the link's #fragment carries (upload.js).
const vaultReady = pageVault().catch(() => null);

const page = $("upload-page");
const maxBytes = Number(page.dataset.maxBytes);
const form = $("load-form");
const input = $("load-file");
const dropzone = $("dropzone");
dropzone.classList.add("scripted");
let current = null;

function showError(message) {
  $("load-error").textContent = message;
  $("load-error").hidden = !message;
  if (message) showFeedback($("load-error"));
}

function reset() {
  current = null;
  form.hidden = false;
  $("load-progress").hidden = true;
  $("load-result").hidden = true;
  input.value = "";
}

async function start(file) {
  showError("");
  await vaultReady;
  if (file.size > maxBytes) {
    showError(`${file.name} is ${formatSize(file.size)}; this server takes files up to ${formatSize(maxBytes)}.`);
    return;
  }
  form.hidden = true;
  $("load-progress").hidden = false;
  $("load-name").textContent = file.name;
  $("load-bar").value = 0;
  $("load-meta").textContent = `0 of ${formatSize(file.size)}`;
  const startedAt = performance.now();
  current = uploadFile(file, {
    target: "share",
    shareOptions: {expires_in: $("load-lifetime").value, max_downloads: $("load-downloads").value,
      password: $("load-password").value},
    onEncrypting(done, total) {
      $("load-bar").value = total ? Math.round((100 * done) / total) : 100;
      $("load-meta").textContent = `Encrypting… ${formatSize(done)} of ${formatSize(total)}`;
    },
    onProgress(loaded, total) {
      $("load-bar").value = total ? Math.round((100 * loaded) / total) : 100;
      $("load-meta").textContent = progressText(loaded, total, startedAt);
    },
  });
  current.promise.then((share) => showResult(share, file), (error) => {
    reset();
    showError(error instanceof UploadCancelled ? "Upload cancelled." : error.message);
  });
}

function showResult(share, file) {
  current = null;
  const encrypted = share.url.includes("#k=");
  $("load-progress").hidden = true;
  $("load-result").hidden = false;
  $("result-name").textContent = encrypted ? file.name : share.filename;
  $("result-size").textContent = formatSize(encrypted ? file.size : share.size);
  $("result-expiry").textContent = absoluteTime(share.expires_at);
  $("result-expiry").dateTime = isoTime(share.expires_at);
  $("result-qr").hidden = encrypted;
  $("result-qr-local").hidden = !encrypted;
  if (encrypted) $("result-qr-local").replaceChildren(qrElement(share.url, "QR code of the download link"));
  else $("result-qr").src = qrURL(share.token);
  $("result-url").value = share.url;
  $("result-open").href = share.url;
  $("result-url").focus();
  $("result-url").select();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.files.length) start(input.files[0]);
  else input.focus();
});
input.addEventListener("change", () => {
  if (input.files.length) start(input.files[0]);
});
$("load-cancel").addEventListener("click", () => current?.abort());
$("load-another").addEventListener("click", () => {
  reset();
  input.focus();
});

for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
}
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) dropzone.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("dragging");
  const file = event.dataTransfer?.files[0];
  if (file && !current) start(file);
});
