// The landing page of an encrypted share link, for anyone with the link (no
// account): the item key is the link's #k= fragment, which never reaches
// the server. The meta blob (name, type, size) is in the page (data-meta);
// the body is decrypted as it streams in.
import {$, h} from "../dom.js";
import {formatSize} from "../format.js";
import {fromB64u} from "./b64u.js";
import {CiphertextError} from "./ece.js";
import {fetchDecrypted} from "./ranged.js";
import {openMeta} from "./keys.js";
import {saveBlob} from "./download.js";

const page = $("shared-encrypted");
const url = page.dataset.downloadUrl;
const PREVIEW_MAX = 20 * 1024 * 1024; // images and texts up to this are decrypted for a preview at once

function itemKey() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const key = fragment.get("k");
  if (!key) return null;
  try {
    const bytes = fromB64u(key);
    return bytes.length === 16 ? bytes : null;
  } catch {
    return null;
  }
}

function fail(message) {
  $("shared-details").textContent = "Cannot be decrypted";
  $("shared-missing-key").textContent = message;
  $("shared-missing-key").hidden = false;
  $("shared-download").disabled = true;
}

function decrypted(key, meta, onProgress) {
  return fetchDecrypted(async (range) => {
    const response = await fetch(url, {credentials: "omit", headers: {Range: range}});
    if (!response.ok) throw new Error(`The server answered ${response.status}: the link may have expired.`);
    return response;
  }, key, {type: meta.mime || "application/octet-stream", onProgress});
}

async function start() {
  const key = itemKey();
  if (!location.hash || !location.hash.includes("k=")) {
    fail("This link is missing its key: the part after # was cut off. Ask for the whole link, "
      + "or copy it again in full; without the key nobody, not even the server, can decrypt the file.");
    return;
  }
  if (!key) {
    fail("The key in this link (after #k=) is damaged: copy the whole link again.");
    return;
  }
  let meta;
  try {
    meta = await openMeta(key, page.dataset.meta || "");
  } catch {
    fail("The key in this link does not open this file: copy the whole link again.");
    return;
  }
  const name = meta.name || "file";
  document.title = `${name} · shared with CloudBuffer`;
  $("shared-title").textContent = name;
  $("shared-details").textContent = `${formatSize(meta.size)} · ${meta.mime || "file"}`;
  const download = $("shared-download");
  download.disabled = false;
  let blob = null;
  const progress = (received, total) => {
    $("shared-progress").textContent = `Decrypting… ${Math.round((100 * received) / total)} %`;
  };
  download.addEventListener("click", async () => {
    download.disabled = true;
    try {
      blob ||= await decrypted(key, meta, progress);
      $("shared-progress").textContent = "Decrypted.";
      saveBlob(blob, name);
    } catch (error) {
      $("shared-progress").textContent = error.message;
    } finally {
      download.disabled = false;
    }
  });
  const mime = meta.mime || "";
  if (meta.size <= PREVIEW_MAX && (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(mime) || mime.startsWith("text/"))) {
    try {
      blob = await decrypted(key, meta, progress);
      $("shared-progress").textContent = "";
      const box = $("shared-preview-box");
      if (mime.startsWith("text/")) {
        const text = await blob.slice(0, 100_000).text();
        box.replaceChildren(h("pre", {class: "shared-preview buffer-text", id: "shared-preview", tabindex: "0",
          "aria-label": `Text of ${name}`}, text));
      } else {
        box.replaceChildren(h("img", {class: "shared-preview", id: "shared-preview", src: URL.createObjectURL(blob),
          alt: `Preview of ${name}`}));
      }
    } catch (error) {
      $("shared-progress").textContent = error instanceof CiphertextError ? error.message : `No preview: ${error.message}`;
    }
  }
}

start();
