// Logging out of this device forgets what it kept for offline use: the last
// buffer in localStorage and the app page in the service worker's cache, and
// an encrypted account's keys (the server drops this device's wraps anyway),
// and the addresses of unfinished uploads (the next account here must not
// resume them; the server expires them).
import {forgetAll} from "./state.js";
import {E2E_DB_NAME} from "./e2e/keystore.js";
import {UPLOADS_DB} from "./tus-url-store.js";

export function forgetDevice() {
  forgetAll();
  // Deleting the database goes on in the browser even when the page is leaving.
  if ("indexedDB" in window) {
    indexedDB.deleteDatabase(E2E_DB_NAME);
    indexedDB.deleteDatabase(UPLOADS_DB);
  }
  navigator.serviceWorker?.controller?.postMessage({type: "forget"});
}

document.addEventListener("submit", (event) => {
  if (!event.target.closest(".logout-form")) return;
  forgetDevice();
  // The app stops its socket and timers: nothing more should be asked of the
  // server with a session that is about to end.
  window.dispatchEvent(new Event("cloudbuffer:leaving"));
});
