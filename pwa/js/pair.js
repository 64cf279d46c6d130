// "Add a device" on a logged-in device: ask for a code, show it with its
// QR code, and let the person allow or refuse the device that claims it.
// The claim is noticed by polling the pairing (it also comes as a `pairing`
// live message to the app, for a later use there).
//
// An encrypted account (docs/e2e.md, flow A): the code commits to an
// ephemeral P-256 key made here, which the QR code's #k= carries; the new
// device claims with its own. Both show the verification code derived from
// the exchange; only once the person says they match are the account keys
// wrapped to the new device's key and sent with the approval.
import {$} from "./dom.js";
import {requestJSON} from "./api.js";
import {absoluteTime, isoTime} from "./format.js";
import {fromB64u, toB64u} from "./e2e/b64u.js";
import {newKeyPair, verificationCode} from "./e2e/keys.js";
import {pageVault} from "./e2e/page.js";
import {qrElement} from "./e2e/qr.js";

const POLL_MS = 1000;
let current = null; // the pairing shown: {id, …, keys?: {privateKey, spki}, scanner?: spki}
let timer = null;
const vaultReady = pageVault().catch(() => null);

function status(text) {
  $("pair-status").textContent = text;
}

async function start() {
  clearTimeout(timer);
  $("pair-request").hidden = true;
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
    $("pair-device").textContent = state.device_name;
    await showVerification(state);
    $("pair-request").hidden = false;
    $("pair-approve").focus();
    status("");
    return;
  }
  timer = setTimeout(() => poll(id), POLL_MS);
}

/** The verification code of the exchange, or why there is none. */
async function showVerification(state) {
  const box = $("pair-verify");
  if (!current.keys) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  $("pair-approve").textContent = "The codes match: allow";
  $("pair-refuse").textContent = "They differ: refuse";
  try {
    current.scanner = fromB64u(state.request_payload || "");
    if (!current.scanner.length) throw new Error("no key");
    $("pair-sas").textContent = await verificationCode(current.keys.privateKey, current.scanner, current.keys.spki,
      current.scanner);
    $("pair-verify-text").hidden = false;
    $("pair-no-key").hidden = true;
  } catch {
    // A device that sent no key (no JavaScript, an old app) could not read anything: it is not allowed in.
    current.scanner = null;
    $("pair-sas").textContent = "";
    $("pair-verify-text").hidden = true;
    $("pair-no-key").hidden = false;
    $("pair-approve").hidden = true;
    $("pair-refuse").textContent = "Refuse";
  }
}

async function decide(verb) {
  try {
    let payload = "";
    if (verb === "approve" && current.keys) {
      const vault = await vaultReady;
      payload = JSON.stringify({wraps: await vault.wrapsFor(current.scanner)});
    }
    const state = await requestJSON(`/account/pairings/${current.id}/${verb}`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(payload ? {payload} : {}),
    });
    $("pair-request").hidden = true;
    status(state.status === "approved"
      ? `${state.device_name} is now logged in to your account.`
      : `${state.device_name} was refused.`);
  } catch (error) {
    status(error.message);
  }
}

$("pair-start").addEventListener("click", start);
$("pair-approve").addEventListener("click", () => decide("approve"));
$("pair-refuse").addEventListener("click", () => decide("refuse"));
