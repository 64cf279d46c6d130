// Every page registers the service worker, so the app is installable and a
// share from the phone's share sheet is kept even when it arrives logged out.
// Where the browser allows no worker (plain http on a LAN address), every page
// says so, and how to fix it, in its banner.

if (!window.isSecureContext) document.getElementById("insecure-banner").hidden = false;

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/service-worker.js", {scope: "/"}).catch((error) => {
    // Private modes and some browsers refuse workers; the app works without one.
    console.warn("CloudBuffer: no service worker:", error.message);
  });
}
