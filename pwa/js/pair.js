// "Add a device" on a logged-in device: ask for a code, show it with its
// QR code, and let the person allow or refuse the device that claims it.
// The claim is noticed by polling the pairing (it also comes as a `pairing`
// live message to the app, for a later use there).
import {$} from "./dom.js";
import {requestJSON} from "./api.js";
import {absoluteTime, isoTime} from "./format.js";

const POLL_MS = 1000;
let current = null;
let timer = null;

function status(text) {
  $("pair-status").textContent = text;
}

async function start() {
  clearTimeout(timer);
  $("pair-request").hidden = true;
  try {
    current = await requestJSON("/account/pairings", {method: "POST"});
  } catch (error) {
    status(error.message);
    return;
  }
  const qr = new DOMParser().parseFromString(current.qr_svg, "image/svg+xml").documentElement;
  $("pair-qr").replaceChildren(document.importNode(qr, true));
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
    $("pair-request").hidden = false;
    $("pair-approve").focus();
    status("");
    return;
  }
  timer = setTimeout(() => poll(id), POLL_MS);
}

async function decide(verb) {
  try {
    const state = await requestJSON(`/account/pairings/${current.id}/${verb}`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: "{}",
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
