// Shares (and texts sent while offline) waiting to be uploaded, kept in
// IndexedDB. The service worker writes a share here when the phone's share
// sheet posts to /share-target (service-worker.js has a copy of the small
// IndexedDB code below, because a classic worker cannot import modules); the
// app uploads them once it runs logged in. Nothing is deleted before the
// server has stored it. The page sends them, not the worker: a big file then
// goes over tus like any other (upload.js), and since the File kept here has
// the same name, size and modification time each time it is read, a send
// cut short by a drop or a closed tab resumes at the server's offset the
// next time the app runs. (A worker cannot load the app's modules, and its
// life is too short to be trusted with a long upload.)
import {sendText} from "./api.js";

export const DB_NAME = "cloudbuffer";
export const STORE = "pending-shares";

function openDB() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: "id", autoIncrement: true});
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const result = action(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(result.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

export const listPending = () => withStore("readonly", (store) => store.getAll());
export const countPending = () => withStore("readonly", (store) => store.count());
export const addPending = (share) => withStore("readwrite", (store) => store.add({received_at: Date.now(), ...share}));
const putPending = (share) => withStore("readwrite", (store) => store.put(share));
const deletePending = (id) => withStore("readwrite", (store) => store.delete(id));

/** The text a share becomes (same rule as shared_text in server/blueprints/pwa.py):
 * the text and the URL (once), the title only when nothing else came. */
export function sharedText({title = "", text = "", url = ""}) {
  [title, text, url] = [title.trim(), text.trim(), url.trim()];
  const parts = text ? [text] : [];
  if (url && !text.includes(url)) parts.push(url);
  if (!parts.length && title) parts.push(title);
  return parts.join("\n");
}

let flushing = null;

/**
 * Upload everything pending, oldest first: a share's text, then its files
 * (so the last file becomes the buffer). `uploadFile(file)` returns a promise.
 * Each part is removed from the record as soon as the server has it, so an
 * interruption never sends anything twice. Resolves with what was sent:
 * {typed, shared}: texts typed in the app while offline (records marked
 * `typed`), and items that came from the share sheet.
 */
export function flushPending(uploadFile) {
  if (!flushing) {
    const run = () => flushAll(uploadFile);
    // Two open tabs must not both send the same share.
    flushing = (navigator.locks ? navigator.locks.request("cloudbuffer-pending-shares", run) : run())
      .finally(() => { flushing = null; });
  }
  return flushing;
}

async function flushAll(uploadFile) {
  const sent = {typed: 0, shared: 0};
  for (const share of await listPending()) {
    const kind = share.typed ? "typed" : "shared";
    const text = sharedText(share);
    if (text) {
      await sendText(text);
      sent[kind] += 1;
      share.title = share.text = share.url = "";
      await putPending(share);
    }
    while (share.files && share.files.length) {
      await uploadFile(share.files[0]);
      sent[kind] += 1;
      share.files = share.files.slice(1);
      await putPending(share);
    }
    await deletePending(share.id);
  }
  return sent;
}

/** What to tell once pending items went out; "" when nothing did. */
export function sentMessage({typed, shared}) {
  const parts = [];
  if (typed) parts.push(typed === 1 ? "the text you wrote offline" : `${typed} texts you wrote offline`);
  if (shared) parts.push(`${shared} shared item${shared === 1 ? "" : "s"}`);
  return parts.length ? `Sent ${parts.join(" and ")}.` : "";
}
