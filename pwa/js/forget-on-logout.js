// Logging out of this device forgets what it kept for offline use: the last
// buffer in localStorage and the app page in the service worker's cache.
import {forgetAll} from "./state.js";

export function forgetDevice() {
  forgetAll();
  navigator.serviceWorker?.controller?.postMessage({type: "forget"});
}

document.addEventListener("submit", (event) => {
  if (!event.target.closest(".logout-form")) return;
  forgetDevice();
  // The app stops its socket and timers: nothing more should be asked of the
  // server with a session that is about to end.
  window.dispatchEvent(new Event("cloudbuffer:leaving"));
});
