// Every page registers the service worker, so the app is installable and a
// share from the phone's share sheet is kept even when it arrives logged out.

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/service-worker.js", {scope: "/"}).catch((error) => {
    // Private modes and some browsers refuse workers; the app works without one.
    console.warn("CloudBuffer: no service worker:", error.message);
  });
}
