// The profile's "End-to-end encryption" card: says whether the buffer is
// encrypted and whether this device has the key; "Encrypt my buffer" asks
// the password, warns that the plaintext history goes, makes the keys here
// and shows the recovery key once (printable).
import {$} from "../dom.js";
import {ApiError} from "../api.js";
import {pageVault, viewer} from "./page.js";
import {enableEncryption} from "./vault.js";

const form = $("e2e-enable-form");

function describe(vault) {
  if (!vault) {
    $("e2e-state").textContent = "Off: the server can read what you send.";
    form.hidden = false;
    $("e2e-enable").disabled = false; // the keys can be made here now
    return;
  }
  form.hidden = true;
  $("e2e-state").textContent = vault.canWrite
    ? `On: your buffer is encrypted end to end, and this device has the key (epoch ${vault.epoch}).`
    : "On, but this device does not have the key: add it from a device that has (Add a device).";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const who = viewer();
  const button = $("e2e-enable");
  button.disabled = true;
  $("e2e-error").hidden = true;
  try {
    const recovery = await enableEncryption(who.username, who.userId, $("e2e-password").value);
    $("e2e-password").value = "";
    $("e2e-recovery-key").textContent = recovery;
    $("e2e-recovery").hidden = false;
    $("e2e-recovery").focus();
    describe(await pageVault());
  } catch (error) {
    $("e2e-error").textContent = error instanceof ApiError ? error.message : `Could not turn encryption on: ${error.message}`;
    $("e2e-error").hidden = false;
    $("e2e-password").focus();
  } finally {
    button.disabled = false;
  }
});

$("e2e-print").addEventListener("click", () => {
  document.body.classList.add("printing-recovery");
  window.print();
});
window.addEventListener("afterprint", () => document.body.classList.remove("printing-recovery"));

$("e2e-recovery-done").addEventListener("click", () => {
  // Gone from the page: it was shown once.
  $("e2e-recovery-key").textContent = "";
  $("e2e-recovery").hidden = true;
  $("e2e-state").focus?.();
});

pageVault().then(describe, (error) => {
  $("e2e-state").textContent = `Could not read the encryption state: ${error.message}`;
});
