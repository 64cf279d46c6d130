// Why this device was logged out, carried from the app (the 4401 close
// reason, "logged out from Laptop") to the login page it lands on.
import {$} from "./dom.js";

const KEY = "cloudbuffer:revoked";

export function noteRevoked(reason) {
  try {
    sessionStorage.setItem(KEY, reason || "this device was logged out");
  } catch { /* storage off: the login page just shows no reason */ }
}

function show() {
  const notice = $("revoked-notice");
  if (!notice) return;
  let reason = null;
  try {
    reason = sessionStorage.getItem(KEY);
    sessionStorage.removeItem(KEY);
  } catch { return; }
  if (!reason) return;
  notice.textContent = /^logged out from /.test(reason)
    ? `This device was ${reason}.`
    : "This device was logged out from another device.";
  notice.hidden = false;
}

show();
