// /pair on the new device, with JavaScript: it joins with a P-256 key of its
// own (docs/e2e.md, flow A), so an encrypted account can hand it the keys.
// A QR code's link carries the other device's key in #k=: it must hash to
// the code, or the link was tampered with and nothing is sent. The private
// key waits in IndexedDB for /pair/wait. Without JavaScript the form posts
// as before, without keys.
import {$} from "./dom.js";
import {requestJSON} from "./api.js";
import {fromB64u, toB64u} from "./e2e/b64u.js";
import {newKeyPair, normalizeCode, pairingCode} from "./e2e/keys.js";
import {savePairing} from "./e2e/pairing-store.js";

const form = document.querySelector("form[action='/pair']");

function showError(message) {
  let alert = $("form-error");
  if (!alert) {
    alert = document.createElement("p");
    alert.className = "alert";
    alert.id = "form-error";
    alert.setAttribute("role", "alert");
    form.before(alert);
  }
  alert.textContent = message;
  $("pair-code").setAttribute("aria-describedby", "form-error");
  alert.scrollIntoView({block: "nearest"});
}

function fragmentKey() {
  const key = new URLSearchParams(location.hash.slice(1)).get("k");
  if (!key) return null;
  try {
    return fromB64u(key);
  } catch {
    return new Uint8Array(0);
  }
}

form.addEventListener("submit", async (event) => {
  if (!("indexedDB" in window) || !crypto.subtle) return; // the plain form then
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const code = normalizeCode($("pair-code").value);
    const shower = fragmentKey();
    if (shower && (await pairingCode(shower)) !== code) {
      showError("This link's key does not match its code: it was changed on the way. Nothing was sent; "
        + "show a new code on your other device.");
      return;
    }
    const keys = await newKeyPair();
    await requestJSON("/pair", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({code, device_name: $("pair-device-name").value, payload: toB64u(keys.spki)}),
    });
    await savePairing({privateKey: keys.privateKey, spki: keys.spki, shower, code});
    location.assign("/pair/wait");
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
  }
});
