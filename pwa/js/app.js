// The app at /: the current buffer, live. Wires the live socket, the saved
// state, the views and the ways to put things in (text, paste, files, shares).
import {$} from "./dom.js";
import {ApiError, NetworkError, deleteItem, itemText, itemURL, listItems, sendText} from "./api.js";
import {copyText, readClipboard} from "./clipboard.js";
import {noteArrival} from "./badge.js";
import {acceptDroppedFiles} from "./drop.js";
import {forgetDevice} from "./forget-on-logout.js";
import {LiveClient} from "./live.js";
import {addPending, countPending, flushPending, sentMessage} from "./pending-shares.js";
import {openShareDialog} from "./share-dialog.js";
import {noteRevoked} from "./revoked-notice.js";
import {HistorySearch, findItems} from "./search.js";
import {loadState, saveState} from "./state.js";
import {showToast} from "./toast.js";
import {sendFiles, uploadWithRow} from "./uploads.js";
import {refreshTimes, renderCurrent, renderHistory, renderStatus} from "./view.js";
import {pageVault} from "./e2e/page.js";
import {currentVault} from "./e2e/current.js";
import {saveBlob} from "./e2e/download.js";

const root = $("app");
const config = {
  username: root.dataset.username,
  deviceKey: root.dataset.deviceKey,
  maxUploadBytes: Number(root.dataset.maxUploadBytes),
  maxTextBytes: Number(root.dataset.maxTextBytes),
};

// What the app knows. `seq` only moves forward, except that the first
// snapshot after the page loads wins whatever was saved (the server may
// have been reset).
const state = {seq: 0, current: null, items: [], texts: {}, devices: [], liveState: "connecting", snapshotSeen: false,
  found: null}; // found: the history search's matches, null when nothing is searched
const ownSeqs = new Set(); // changes this device made: no "new" badge for them
const saved = loadState(config.username);
if (saved) Object.assign(state, {seq: saved.seq, current: saved.current, items: saved.items || [], texts: saved.texts || {}});

const live = new LiveClient();
// An encrypted account's keys (null: not encrypted): known before anything
// arriving is shown, since encrypted items are decrypted first.
let vaultReady = pageVault().catch((error) => {
  showToast(`Could not open this device's keys: ${error.message}`, "error");
  return null;
});

/** What an encrypted item hides, decrypted (plain items as they are). */
async function reveal(item) {
  if (!item.encrypted) return item;
  const vault = await vaultReady;
  if (!vault) return {...item, filename: "Encrypted item", locked: "This device does not have your buffer's key."};
  return vault.reveal(item);
}

/** A text item's text: fetched, and decrypted when it is encrypted. */
async function fetchText(item) {
  if (!item.encrypted) return itemText(item.id);
  const vault = await vaultReady;
  if (!vault) throw new Error("This device does not have your buffer's key.");
  return vault.fetchText(itemURL(item.id), item.key);
}
const offline = () => state.liveState !== "connected";

const actions = {
  async copy(item) {
    const known = state.texts[item.id];
    try {
      await copyText(typeof known === "string" ? known : fetchText(item));
      showToast("Copied to the clipboard.");
    } catch (error) {
      showToast(`Could not copy: ${error.message}`, "error");
    }
  },
  async download(item) {
    const vault = await vaultReady;
    try {
      if (!vault) throw new Error("This device does not have your buffer's key.");
      showToast(`Decrypting ${item.filename}…`, "info");
      const blob = await vault.fetchPlain(itemURL(item.id), item.key, {type: item.mime || "application/octet-stream"});
      saveBlob(blob, item.filename);
      showToast(`Saved ${item.filename}.`);
    } catch (error) {
      showToast(`Could not download: ${error.message}`, "error");
    }
  },
  async share(item) {
    try {
      await openShareDialog(item, refreshHistory);
    } catch (error) {
      showToast(error.message, "error");
    }
  },
  remove(item) {
    // The item leaves the list at once; the server deletes it only when the
    // Undo window has passed (or the page goes away), so Undo is honest:
    // nothing was deleted yet.
    const name = item.type === "text" ? "the text" : item.filename;
    const timer = setTimeout(() => commitDelete(item), UNDO_MS);
    deleting.set(item.id, timer);
    drawHistory();
    showToast(`Deleted ${name}.`, "info", UNDO_MS, {label: "Undo", run: () => {
      clearTimeout(deleting.get(item.id));
      deleting.delete(item.id);
      drawHistory();
      showToast(`Restored ${name}.`);
    }});
  },
};

const UNDO_MS = 6000;
const deleting = new Map(); // item id → the timer that deletes it for real

async function commitDelete(item) {
  try {
    await deleteItem(item.id);
    state.items = state.items.filter((other) => other.id !== item.id);
    if (state.found) state.found = state.found.filter((other) => other.id !== item.id);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) showToast(`Could not delete: ${error.message}`, "error");
  } finally {
    deleting.delete(item.id);
    drawHistory();
  }
}

// Leaving within the Undo window: the deletes still happen.
window.addEventListener("pagehide", () => {
  for (const [id, timer] of deleting) {
    clearTimeout(timer);
    fetch(itemURL(id), {method: "DELETE", keepalive: true, credentials: "same-origin",
      headers: {Accept: "application/json"}}).catch(() => {});
  }
  deleting.clear();
});

function drawCurrent() {
  const current = state.current;
  renderCurrent(current, current ? state.texts[current.id] : undefined, actions, {offline: offline()});
}

function drawHistory() {
  const searching = state.found !== null;
  const shown = (items) => items.filter((item) => !deleting.has(item.id));
  renderHistory(shown(searching ? state.found : state.items), state.texts, state.current?.id, actions,
    {offline: offline(), total: searching ? shown(state.items).length : null});
}

// --- searching the history ---------------------------------------------------

let searchRun = 0; // only the latest search's answer is drawn

async function runSearch(filter) {
  const run = ++searchRun;
  if (!filter.active) {
    state.found = null;
    drawHistory();
    return;
  }
  try {
    // An encrypted account is searched here, over what this device decrypted: the server cannot.
    const {items} = await findItems(filter, state.items, state.texts, {offline: offline() || Boolean(currentVault())});
    if (run !== searchRun) return;
    state.found = items;
    drawHistory();
  } catch (error) {
    showToast(`Could not search: ${error.message}`, "error");
  }
}

const search = new HistorySearch(runSearch);

function drawStatus() {
  renderStatus(state.liveState, state.devices, config.deviceKey);
}

function persist() {
  saveState(config.username, state);
}

// --- receiving -------------------------------------------------------------

async function onBuffer(event) {
  if (state.snapshotSeen && event.seq <= state.seq) return; // a late or repeated event
  const message = await reveal(event);
  if (state.snapshotSeen && message.seq <= state.seq) return; // a newer one was shown while this decrypted
  state.snapshotSeen = true;
  const changed = message.seq !== state.seq || message.id !== state.current?.id;
  state.seq = message.seq;
  state.current = message.kind ? message : null;
  if (message.kind === "text" && typeof message.text === "string") state.texts[message.id] = message.text;
  delete state.current?.text; // kept once, in texts
  drawCurrent();
  persist();
  if (message.kind === "text" && typeof state.texts[message.id] !== "string" && !message.locked) loadText(message);
  if (changed && message.kind && !ownSeqs.has(message.seq)) noteArrival();
  refreshHistory();
}

const loadingTexts = new Set();

async function loadText(item) {
  const id = item.id;
  if (loadingTexts.has(id)) return;
  loadingTexts.add(id);
  try {
    state.texts[id] = await fetchText(item);
    if (state.current?.id === id) drawCurrent();
    drawHistory();
    persist();
  } catch {
    // Gone (deleted, expired) or offline: the next refresh settles it.
  } finally {
    loadingTexts.delete(id);
  }
}

let refreshTimer = null;
let leaving = false; // logging out: ask the server nothing more

function refreshHistory() {
  clearTimeout(refreshTimer);
  if (leaving) return;
  refreshTimer = setTimeout(async () => {
    let found;
    try {
      found = await listItems();
    } catch {
      return; // offline: keep what we have
    }
    state.items = await Promise.all(found.map(reveal));
    const ids = new Set(state.items.map((item) => item.id));
    for (const id of Object.keys(state.texts)) if (!ids.has(Number(id))) delete state.texts[id];
    if (search.filter.active) runSearch(search.filter);
    drawHistory();
    persist();
    for (const item of state.items) {
      if (item.type === "text" && typeof state.texts[item.id] !== "string" && item.size <= 64 * 1024 && !item.locked) {
        loadText(item);
      }
    }
  }, 100);
}

live.addEventListener("message", ({detail: message}) => {
  switch (message.type) {
    case "hello":
      if (message.max_text_bytes) config.maxTextBytes = message.max_text_bytes;
      break;
    case "buffer":
      onBuffer(message);
      break;
    case "e2e":
      onKeyChange(message);
      break;
    case "devices":
      state.devices = message.devices;
      drawStatus();
      break;
    case "error":
      live.rejectOldest(new Error(message.message));
      showToast(message.message, "error");
      break;
    default:
      break;
  }
});

// The account's keys changed: encryption was turned on elsewhere, a device
// was revoked (rotation_needed: this device makes the next epoch, unless
// another enrolled device was first), or a new epoch was made.
async function onKeyChange(message) {
  let vault = await vaultReady;
  try {
    if (!vault) {
      vaultReady = pageVault();
      vault = await vaultReady;
    }
    if (vault && message.rotation_needed && vault.canWrite) {
      try {
        await vault.rotate();
      } catch (error) {
        if (!(error instanceof ApiError && error.code === "stale_key")) throw error; // another device rotated first
      }
    }
    if (vault) await vault.refresh();
    refreshHistory();
  } catch (error) {
    showToast(`Could not update this device's keys: ${error.message}`, "error");
  }
}

live.addEventListener("state", ({detail}) => {
  const wasOffline = offline();
  state.liveState = detail;
  drawStatus();
  if (wasOffline !== offline()) {
    drawCurrent();
    drawHistory();
  }
  if (detail === "connected") sendPending();
});

live.addEventListener("revoked", ({detail: reason}) => {
  forgetDevice();
  noteRevoked(reason);
  location.assign("/account/login");
});

window.addEventListener("cloudbuffer:leaving", () => {
  leaving = true;
  live.stop();
  clearTimeout(refreshTimer);
});

window.addEventListener("cloudbuffer:logged-out", () => {
  if (leaving) return;
  forgetDevice();
  location.assign("/account/login");
});

// --- sending ---------------------------------------------------------------

function stored(item) {
  if (item && item.seq) ownSeqs.add(item.seq);
}

async function putText(text) {
  if (new Blob([text]).size > config.maxTextBytes) {
    // Too long for a text item: it goes as a file instead.
    const file = new File([text], "text.txt", {type: "text/plain"});
    await sendFiles([file], {maxBytes: config.maxUploadBytes, onStored: stored});
    return true;
  }
  const vault = currentVault();
  if (vault?.state?.rotation_needed && vault.canWrite) await onKeyChange({rotation_needed: true});
  if (live.connected) {
    try {
      const ack = vault ? await live.setEncrypted(await vault.encryptText(text)) : await live.setText(text);
      stored(ack);
      return true;
    } catch (error) {
      if (error.message !== "Not connected.") throw error;
    }
  }
  try {
    stored(await sendText(text));
    return true;
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    await addPending({text, typed: true});
    showToast("You are offline: it will be sent when the connection is back.");
    return false;
  }
}

const textBox = $("send-text");

async function submitText() {
  const text = textBox.value;
  if (!text.trim()) {
    textBox.focus();
    return;
  }
  $("send-button").disabled = true;
  try {
    await putText(text);
    textBox.value = "";
  } catch (error) {
    showToast(error.message, "error");
  } finally {
    $("send-button").disabled = false;
    textBox.focus();
  }
}

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submitText();
});

textBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    submitText();
  }
});

if (/Mac|iPhone|iPad/.test(navigator.platform)) $("send-shortcut").textContent = "⌘+Enter";

function putFiles(files) {
  return sendFiles(files, {maxBytes: config.maxUploadBytes, onStored: stored});
}

$("paste-send").addEventListener("click", async () => {
  try {
    const {text, files} = await readClipboard();
    if (files.length) await putFiles(files);
    else if (text) {
      if (await putText(text)) showToast("Sent what was on the clipboard.");
    } else showToast("The clipboard is empty.");
  } catch (error) {
    showToast(`Could not read the clipboard: ${error.message}`, "error");
  }
});

const fileInput = $("file-input");
$("choose-files").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  const files = [...fileInput.files];
  fileInput.value = "";
  if (files.length) putFiles(files);
});

acceptDroppedFiles(putFiles);

// --- shares from the share sheet, texts sent while offline -----------------

async function sendPending() {
  if (!("indexedDB" in window)) return;
  try {
    if ((await countPending()) === 0) return;
    const sent = await flushPending(async (file) => stored(await uploadWithRow(file)));
    const message = sentMessage(sent);
    if (message) showToast(message);
  } catch (error) {
    if (!(error instanceof NetworkError)) showToast(`Could not send what was shared: ${error.message}`, "error");
  }
}

// Keep this page for offline use: the worker caches / when asked by a page
// that is logged in (now, and whenever a new worker version takes over).
function keepPageOffline() {
  navigator.serviceWorker?.ready.then((registration) => {
    registration.active?.postMessage({type: "cache-app-page"});
  }).catch(() => {});
}
navigator.serviceWorker?.addEventListener("controllerchange", keepPageOffline);
keepPageOffline();

// The share target's answer (303 to /?shared=N or /?share=received) has done
// its job once the page is here; a reload should not look like a new share.
if (location.search) {
  const params = new URLSearchParams(location.search);
  const shared = params.get("shared");
  if (params.get("action") === "send-files") $("choose-files").focus(); // the manifest's shortcut
  if (shared && Number(shared) > 0) showToast(`Received ${shared} shared item${shared === "1" ? "" : "s"}.`);
  history.replaceState(null, "", "/");
}

// --- start -----------------------------------------------------------------

drawCurrent();
drawHistory();
drawStatus();
setInterval(() => { if (!document.hidden) refreshTimes(); }, 30_000);
vaultReady.then(async (vault) => {
  // A revoke happened while this device was away: rotate before posting anything.
  if (vault?.state?.rotation_needed && vault.canWrite) await onKeyChange({rotation_needed: true});
  live.start();
  if (navigator.onLine) refreshHistory();
});
