// The new device, after sending the code: ask about once a second whether
// the other device has answered; once allowed, take the session and open the app.
//
// When it joined with a key (pair-join.js), it shows the verification code
// of the exchange for the person to compare with the other device's, and
// keeps the account keys that come with the approval (docs/e2e.md, flow A):
// unwrapped with its ephemeral key, they are registered under a long-lived
// device key of its own.
import {$} from "./dom.js";
import {NetworkError, requestJSON} from "./api.js";
import {fromB64u} from "./e2e/b64u.js";
import {pairingCode, verificationCode, wrapSender} from "./e2e/keys.js";
import {forgetPairing, loadPairing} from "./e2e/pairing-store.js";
import {enrollDevice, unwrapAll} from "./e2e/vault.js";

const POLL_MS = 1000;
let pairing = null; // {privateKey, spki, shower, code} when this device joined with a key

function say(text) {
  $("wait-status").textContent = text;
}

/** The other device's key: the QR code's, or the one the server relays, which must then hash to the code. */
async function showerKey(offer) {
  if (pairing.shower && pairing.shower.length) {
    if (offer && offer !== "" && !equal(fromB64u(offer), pairing.shower)) {
      throw new Error("The server relayed another key than the QR code's: refuse on your other device.");
    }
    return pairing.shower;
  }
  if (!offer) return null;
  const key = fromB64u(offer);
  if ((await pairingCode(key)) !== pairing.code) throw new Error("The other device's key does not match the code.");
  return key;
}

function equal(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function showCode(offer) {
  if (!pairing || $("wait-sas").textContent) return;
  const shower = await showerKey(offer);
  if (!shower) return;
  pairing.shower = shower;
  $("wait-sas").textContent = await verificationCode(pairing.privateKey, shower, shower, pairing.spki);
  $("wait-verify").hidden = false;
}

async function complete() {
  const done = await requestJSON("/pair/complete", {method: "POST", headers: {"Content-Type": "application/json"},
    body: "{}"});
  if (pairing && done.payload) {
    say("Allowed. Storing your buffer's key on this device…");
    const {wraps} = JSON.parse(done.payload);
    // Only wraps made with the key the verification code covered (docs/e2e.md): the server, which saw
    // this device's key, could otherwise hand it account keys of its own choosing.
    if (!pairing.shower || !(wraps || []).every((wrap) => equal(wrapSender(wrap.blob), pairing.shower))) {
      throw new Error("The keys that came with the approval were not sent by the device whose code you compared: "
        + "nothing was kept. Log out, and add this device again.");
    }
    const keys = await unwrapAll(wraps, {privateKey: pairing.privateKey, spki: pairing.spki});
    if (!Object.keys(keys).length) throw new Error("The keys that came with the approval are not for this device.");
    await enrollDevice(done.username, done.id, keys);
  }
  await forgetPairing();
}

async function check() {
  try {
    const state = await requestJSON("/pair/status");
    await showCode(state.offer_payload);
    if (state.status === "approved") {
      await complete();
      say("Allowed. Opening CloudBuffer…");
      window.location.replace("/");
      return;
    }
    if (state.status === "refused") {
      await forgetPairing();
      $("wait-verify").hidden = true;
      say("Your other device refused this one.");
      return;
    }
  } catch (error) {
    if (!(error instanceof NetworkError)) {
      say(error.message);
      return;
    }
    // Offline for a moment: keep asking.
  }
  setTimeout(check, POLL_MS);
}

loadPairing().catch(() => null).then((found) => {
  pairing = found || null;
  check();
});
