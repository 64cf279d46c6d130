// The upload queue of the app: one row per file with a progress bar and a
// Cancel button. Files go one after another, so the last one chosen ends up
// as the buffer on every device.
import {$, h} from "./dom.js";
import {formatSize, progressText} from "./format.js";
import {uploadFile, UploadCancelled} from "./upload.js";

const queue = [];
let running = false;

/** Queue files; resolves when this batch is done (each row shows its result). */
export function sendFiles(files, {maxBytes = Infinity, onStored = () => {}} = {}) {
  const done = files.map((file) => new Promise((resolve) => queue.push({file, maxBytes, onStored, resolve})));
  pump();
  return Promise.all(done);
}

/** Upload one file with a row in the list; for the pending-shares flush. */
export function uploadWithRow(file) {
  return new Promise((resolve, reject) => {
    queue.push({file, maxBytes: Infinity, onStored: () => {}, resolve, reject, strict: true});
    pump();
  });
}

async function pump() {
  if (running) return;
  running = true;
  while (queue.length) {
    const job = queue.shift();
    try {
      job.resolve(await runJob(job));
    } catch (error) {
      if (job.strict) job.reject(error);
      else job.resolve(null);
    }
  }
  running = false;
}

async function runJob({file, maxBytes, onStored}) {
  const bar = h("progress", {max: 100, value: 0, "aria-label": `Upload progress of ${file.name}`});
  const status = h("span", {class: "meta"}, `0 of ${formatSize(file.size)}`);
  const cancel = h("button", {type: "button", class: "small", "aria-label": `Cancel upload of ${file.name}`}, "Cancel");
  const row = h("div", {class: "upload", dataset: {state: "running"}},
    h("span", {class: "name", title: file.name}, file.name), cancel, bar, status);
  $("uploads").append(row);

  const finish = (state, message, keep = state === "error") => {
    row.dataset.state = state;
    status.textContent = message;
    cancel.remove();
    if (!keep) setTimeout(() => row.remove(), 2500);
  };
  if (file.size > maxBytes) {
    finish("error", `Too large: this server takes files up to ${formatSize(maxBytes)}.`);
    throw new Error("too large");
  }
  const startedAt = performance.now();
  const upload = uploadFile(file, {
    onEncrypting(done, total) {
      bar.value = total ? Math.round((100 * done) / total) : 100;
      status.textContent = `Encrypting… ${formatSize(done)} of ${formatSize(total)}`;
    },
    onProgress(loaded, total) {
      bar.value = total ? Math.round((100 * loaded) / total) : 100;
      status.textContent = progressText(loaded, total, startedAt);
    },
    onResuming() {
      status.textContent = "Resuming where it stopped…";
    },
    onWaiting() {
      status.textContent = "Offline: it goes on when the connection is back.";
    },
  });
  cancel.addEventListener("click", () => upload.abort());
  try {
    const item = await upload.promise;
    bar.value = 100;
    finish("done", `Sent · ${formatSize(file.size)}`);
    onStored(item);
    return item;
  } catch (error) {
    if (error instanceof UploadCancelled) {
      finish("cancelled", "Cancelled.", false);
    } else {
      finish("error", error.message);
    }
    throw error;
  }
}
