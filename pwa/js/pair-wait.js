// The new device, after sending the code: ask about once a second whether
// the other device has answered; once allowed, take the session and open the app.
import {$} from "./dom.js";
import {ApiError, requestJSON} from "./api.js";

const POLL_MS = 1000;

async function check() {
  try {
    const {status} = await requestJSON("/pair/status");
    if (status === "approved") {
      await requestJSON("/pair/complete", {method: "POST"});
      $("wait-status").textContent = "Allowed. Opening CloudBuffer…";
      window.location.replace("/");
      return;
    }
    if (status === "refused") {
      $("wait-status").textContent = "Your other device refused this one.";
      return;
    }
  } catch (error) {
    if (error instanceof ApiError) {
      $("wait-status").textContent = error.message;
      return;
    }
    // Offline for a moment: keep asking.
  }
  setTimeout(check, POLL_MS);
}

check();
