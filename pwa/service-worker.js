// CloudBuffer's service worker (scope /). The server prepends
//   const SHELL = {version, files}
// — the shell's version and the versioned URLs of everything the app page
// loads — so a change to any of them is a new worker (see
// server/blueprints/pwa.py).
//
// What it does, and only that:
//   - precaches the app shell under a versioned cache; old caches go on activate;
//   - the app page (GET /) is network-first, its last good copy kept for
//     offline use (the page then shows the last buffer it saved);
//   - shell files are served from the cache;
//   - POST /share-target (the manifest's share_target) is kept in IndexedDB
//     and answered with a 303 to the app, which uploads it once logged in;
//   - everything else — the API, /ws, downloads, /account/* — is never
//     intercepted: the browser talks to the server directly.
/* global SHELL */

const CACHE = `cloudbuffer-shell-${SHELL.version}`;
const CACHE_PREFIX = "cloudbuffer-shell-";
const APP_PAGE = "/";
const SHELL_PATHS = new Set(SHELL.files.map((url) => new URL(url, self.location.origin).pathname));

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.files);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE)
      .map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

/** The app page as it is now. The app asks for this when it runs (so the
 * browser is logged in): the first visit, before this worker controlled the
 * page, and after a new version of the worker took over. */
async function cacheAppPage() {
  try {
    const response = await fetch(APP_PAGE, {redirect: "manual", cache: "no-store"});
    if (response.ok && response.type === "basic") await (await caches.open(CACHE)).put(APP_PAGE, response);
  } catch {
    // Offline: the next visit to / caches it.
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method === "POST" && url.pathname === "/share-target") {
    event.respondWith(receiveShare(request));
    return;
  }
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    if (url.pathname === APP_PAGE) event.respondWith(appPage(request));
    return;
  }
  if (SHELL_PATHS.has(url.pathname)) event.respondWith(shellFile(request));
});

async function appPage(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic" && !response.redirected) {
      await cache.put(APP_PAGE, response.clone());
    } else if (response.type === "opaqueredirect") {
      await cache.delete(APP_PAGE); // logged out: this device keeps no one's page
    }
    return response;
  } catch (error) {
    const cached = await cache.match(APP_PAGE);
    if (cached) return cached;
    return new Response(
      "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>" +
      "<title>CloudBuffer · offline</title><h1>CloudBuffer is offline</h1>" +
      "<p>This device has not opened CloudBuffer while logged in yet. Connect and try again.</p>",
      {status: 503, headers: {"Content-Type": "text/html; charset=utf-8"}});
  }
}

async function shellFile(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  try {
    return await fetch(request);
  } catch (error) {
    // Offline, and a URL from another version of the shell: any copy will do.
    const any = await cache.match(request, {ignoreSearch: true});
    if (any) return any;
    throw error;
  }
}

self.addEventListener("message", (event) => {
  if (event.data?.type === "forget") {
    event.waitUntil(caches.open(CACHE).then((cache) => cache.delete(APP_PAGE)));
  } else if (event.data?.type === "cache-app-page") {
    event.waitUntil(cacheAppPage());
  }
});

// --- the share target ---------------------------------------------------------
// The same small IndexedDB store as pwa/js/pending-shares.js (a classic
// worker cannot import ES modules everywhere yet).

const DB_NAME = "cloudbuffer";
const STORE = "pending-shares";

function openDB() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: "id", autoIncrement: true});
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function addPending(share) {
  const db = await openDB();
  try {
    await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, "readwrite");
      transaction.objectStore(STORE).add(share);
      transaction.oncomplete = resolve;
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

async function receiveShare(request) {
  let form;
  try {
    form = await request.formData();
  } catch (error) {
    return Response.redirect("/?share=unreadable", 303);
  }
  const field = (name) => (typeof form.get(name) === "string" ? form.get(name) : "");
  // A share without files still carries an empty, nameless file part.
  const files = form.getAll("files").filter((file) => typeof file !== "string" && (file.size > 0 || file.name));
  const share = {received_at: Date.now(), title: field("title"), text: field("text"), url: field("url"), files};
  if (!share.title && !share.text && !share.url && !files.length) return Response.redirect("/", 303);
  await addPending(share);
  // The app this redirect opens sends it when it starts (logged in) or after
  // the login. Other open windows are not told: the one that posted is being
  // navigated away, and a send it started would be cut off halfway.
  return Response.redirect("/?share=received", 303);
}
