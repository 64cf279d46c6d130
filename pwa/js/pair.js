// "Add a device" on a logged-in device, both ways round (docs/e2e.md):
//
// - Flow A, this device shows: ask for a code, show it with its QR code,
//   and let the person allow or refuse the device that claims it. The claim
//   is noticed by polling the pairing (it also comes as a `pairing` live
//   message to the app, for a later use there).
// - Flow B, the new device shows (`cloudbuffer pair` in a terminal): its QR
//   code opens this page as /account/pair?code=CODE#k=KEY, or its code is
//   typed in "Enter the code another device shows". The code commits to the
//   new device's key: the key (the link's, or the server's when there is no
//   link) must hash to it, or nothing is sent. This device then takes the
//   request with a key of its own.
//
// Either way both screens show the verification code derived from the two
// ephemeral P-256 keys, and only once the person says they match are the
// account keys of an encrypted account wrapped to the new device's key,
// with this device's pairing key as the wraps' ephemeral key, and sent with
// the approval.
import {$} from "./dom.js";
import {requestJSON} from "./api.js";
import {absoluteTime, isoTime} from "./format.js";
import {fromB64u, toB64u} from "./e2e/b64u.js";
import {newKeyPair, normalizeCode, pairingCode, verificationCode} from "./e2e/keys.js";
import {pageVault} from "./e2e/page.js";
import {qrElement} from "./e2e/qr.js";

const POLL_MS = 1000;
// The pairing being decided: {id, …, keys?: {privateKey, spki}, peer?: the new device's spki, taken?: flow B}.
let current = null;
let timer = null;
const vaultReady = pageVault().catch(() => null);

function status(text) {
  $("pair-status").textContent = text;
}

function equal(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

// --- flow A: this device shows a code ------------------------------------------------

async function start() {
  clearTimeout(timer);
  $("pair-request").hidden = true;
  takeError("");
  const vault = await vaultReady;
  const keys = vault?.canWrite ? await newKeyPair() : null;
  try {
    current = await requestJSON("/account/pairings", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(keys ? {payload: toB64u(keys.spki)} : {}),
    });
  } catch (error) {
    status(error.message);
    return;
  }
  current.keys = keys;
  if (keys) {
    // The key goes in the fragment, which the scanning browser never sends on.
    $("pair-qr").replaceChildren(qrElement(`${current.url}#k=${toB64u(keys.spki)}`, "QR code of the pairing link"));
  } else {
    const qr = new DOMParser().parseFromString(current.qr_svg, "image/svg+xml").documentElement;
    $("pair-qr").replaceChildren(document.importNode(qr, true));
  }
  $("pair-code").textContent = current.code;
  $("pair-expiry").textContent = absoluteTime(current.expires_at);
  $("pair-expiry").dateTime = isoTime(current.expires_at);
  $("pair-code-box").hidden = false;
  $("pair-start").textContent = "Show a new code";
  status("Waiting for the new device…");
  poll(current.id);
}

async function poll(id) {
  if (!current || current.id !== id) return;
  let state;
  try {
    state = await requestJSON(`/account/pairings/${id}`);
  } catch {
    $("pair-code-box").hidden = true;
    status("The code expired. Show a new one to try again.");
    return;
  }
  if (state.status === "claimed") {
    $("pair-code-box").hidden = true;
    await showRequest(state);
    return;
  }
  timer = setTimeout(() => poll(id), POLL_MS);
}

// --- flow B: the new device shows, this one takes its code ---------------------------

function takeError(message) {
  const alert = $("pair-take-error");
  alert.textContent = message;
  alert.hidden = !message;
  if (message) {
    $("pair-take-code").setAttribute("aria-describedby", "pair-take-error");
  } else {
    $("pair-take-code").removeAttribute("aria-describedby");
  }
}

function fragmentKey() {
  const key = new URLSearchParams(location.hash.slice(1)).get("k");
  if (!key) return null;
  try {
    return fromB64u(key);
  } catch {
    return new Uint8Array(0); // a damaged key: it hashes to no code
  }
}

/** The new device's key for `code`: the link's, or the server's; either must hash to the code. */
async function showerKey(code, linkKey) {
  if (linkKey) {
    if ((await pairingCode(linkKey)) !== code) {
      throw new Error("This link's key does not match its code: it was changed on the way. Nothing was sent; "
        + "ask the new device for a new code.");
    }
    return linkKey;
  }
  const {payload} = await requestJSON(`/pair/payload?code=${encodeURIComponent(code)}`);
  const key = payload ? fromB64u(payload) : new Uint8Array(0);
  if (!key.length || (await pairingCode(key)) !== code) {
    throw new Error("The server's key for this code does not match the code: someone may be in between. "
      + "Nothing was sent; start the pairing again on the new device.");
  }
  return key;
}

async function take(typed, linkKey = null) {
  clearTimeout(timer);
  $("pair-code-box").hidden = true;
  $("pair-request").hidden = true;
  takeError("");
  const button = $("pair-take-button");
  button.disabled = true;
  try {
    const code = normalizeCode(typed);
    if (!/^[0-9A-Z]{10}$/.test(code)) {
      throw new Error("A code has 10 letters and digits, like ABCDE-FGHJK.");
    }
    const vault = await vaultReady;
    if (vault && !vault.canWrite) {
      throw new Error("Your buffer is end-to-end encrypted and this device does not have its key to give. "
        + "Take the code on a device that has it.");
    }
    status("Checking the code…");
    const shower = await showerKey(code, linkKey);
    const keys = await newKeyPair();
    const state = await requestJSON("/account/pairings/claim", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({code, payload: toB64u(keys.spki)}),
    });
    if (state.request_payload !== toB64u(shower)) {
      await requestJSON(`/account/pairings/${state.id}/refuse`, {
        method: "POST", headers: {"Content-Type": "application/json"}, body: "{}",
      }).catch(() => null);
      throw new Error("The server relayed another key for the new device than its code commits to: "
        + "the pairing was refused.");
    }
    current = {...state, keys, taken: true};
    $("pair-take-code").value = "";
    await showRequest(state, shower);
  } catch (error) {
    status("");
    takeError(error.message);
    $("pair-take-code").focus();
  } finally {
    button.disabled = false;
  }
}

// --- deciding -----------------------------------------------------------------------

async function showRequest(state, shower = null) {
  $("pair-device").textContent = state.device_name;
  await showVerification(state, shower);
  $("pair-request").hidden = false;
  $("pair-approve").focus();
  status("");
}

/** The verification code of the exchange, or why there is none. */
async function showVerification(state, shower) {
  const box = $("pair-verify");
  $("pair-approve").hidden = false;
  if (!current.keys) {
    box.hidden = true;
    $("pair-approve").textContent = "Allow";
    $("pair-refuse").textContent = "Refuse";
    return;
  }
  box.hidden = false;
  $("pair-approve").textContent = "The codes match: allow";
  $("pair-refuse").textContent = "They differ: refuse";
  try {
    // The new device's key: it showed the code (flow B), or claimed with it (flow A).
    current.peer = shower || fromB64u(state.request_payload || "");
    if (!current.peer.length) throw new Error("no key");
    const [showerSpki, scannerSpki] = shower ? [shower, current.keys.spki] : [current.keys.spki, current.peer];
    $("pair-sas").textContent = await verificationCode(current.keys.privateKey, current.peer, showerSpki,
      scannerSpki);
    $("pair-verify-text").hidden = false;
    $("pair-no-key").hidden = true;
  } catch {
    // A device that sent no key (no JavaScript, an old app) could not read anything: it is not allowed in.
    current.peer = null;
    $("pair-sas").textContent = "";
    $("pair-verify-text").hidden = true;
    $("pair-no-key").hidden = false;
    $("pair-approve").hidden = true;
    $("pair-refuse").textContent = "Refuse";
  }
}

async function decide(verb) {
  if (!current) return;
  try {
    let payload = "";
    const vault = await vaultReady;
    if (verb === "approve" && current.keys && vault) {
      if (!current.peer) throw new Error("This device sent no key: it can only be refused.");
      payload = JSON.stringify({wraps: await vault.wrapsFor(current.peer, current.keys)});
    }
    const state = await requestJSON(`/account/pairings/${current.id}/${verb}`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(payload ? {payload} : {}),
    });
    $("pair-request").hidden = true;
    const joined = current.taken ? "may now join your account" : "is now logged in to your account";
    status(state.status === "approved" ? `${state.device_name} ${joined}.` : `${state.device_name} was refused.`);
    current = null;
  } catch (error) {
    status(error.message);
  }
}

$("pair-start").addEventListener("click", start);
$("pair-approve").addEventListener("click", () => decide("approve"));
$("pair-refuse").addEventListener("click", () => decide("refuse"));
$("pair-take").addEventListener("submit", (event) => {
  event.preventDefault();
  take($("pair-take-code").value);
});

// Opened from a new device's QR code: take its code at once. The address
// loses the code (and the key), so a reload does not try a used code again.
const linked = new URLSearchParams(location.search).get("code");
if (linked) {
  const linkKey = fragmentKey();
  history.replaceState(null, "", location.pathname);
  $("pair-take-code").value = linked;
  take(linked, linkKey);
}
