// "Share link" on a file: the file's live link (the server hands the same
// one back), or a new one with the lifetime and download limit the person picks; shown with its
// QR code, expiry and time left, Copy link and, on phones, the share sheet.
import {$} from "./dom.js";
import {qrURL, shareItem} from "./api.js";
import {copyText} from "./clipboard.js";
import {absoluteTime, formatSize, isoTime, relativeTime} from "./format.js";
import {showToast} from "./toast.js";
import {currentVault} from "./e2e/current.js";
import {toB64u} from "./e2e/b64u.js";
import {qrElement} from "./e2e/qr.js";

/**
 * An encrypted item's link carries the item's key in its #fragment, which
 * browsers never send: the landing page decrypts with it. The server knows
 * neither the name nor the size, so they come from the item.
 */
async function withKey(item, share) {
  if (!item.encrypted) return share;
  const vault = currentVault();
  if (!vault) throw new Error("This device does not have your buffer's key.");
  const {key} = await vault.openKey(item.key);
  return {...share, url: `${share.url.split("#")[0]}#k=${toB64u(key)}`, filename: item.filename, size: item.size,
    encrypted: true};
}

const dialog = $("share-dialog");
let shown = null; // {item, share, onChange}

$("share-copy")?.addEventListener("click", async () => {
  try {
    await copyText($("share-url").value);
    showToast("Link copied.");
  } catch {
    $("share-url").select();
    showToast("Press Ctrl+C to copy the selected link.");
  }
});

// The native share sheet is offered where there is one (phones, mostly).
const nativeShare = $("share-native");
if (nativeShare && typeof navigator.share === "function") {
  nativeShare.hidden = false;
  nativeShare.addEventListener("click", async () => {
    const data = {title: shown.share.filename, url: shown.share.url};
    if (navigator.canShare && !navigator.canShare(data)) return;
    try {
      await navigator.share(data);
    } catch (error) {
      if (error.name !== "AbortError") showToast(`Could not share: ${error.message}`, "error");
    }
  });
}

$("share-make-new")?.addEventListener("click", async () => {
  if (!shown) return;
  try {
    const downloads = Number($("share-downloads").value) || undefined;
    const share = await withKey(shown.item,
      await shareItem(shown.item.id, {new: true, expiresIn: Number($("share-lifetime").value),
                                      maxDownloads: downloads, password: $("share-password").value}));
    $("share-password").value = "";
    show(share);
    showToast(`New link, valid for ${relativeTime(share.expires_at).replace(/^in /, "")}.`);
    shown.onChange?.();
  } catch (error) {
    showToast(error.message, "error");
  }
});

function show(share) {
  shown.share = share;
  $("share-name").textContent = share.filename;
  $("share-size").textContent = formatSize(share.size);
  $("share-expiry").textContent = absoluteTime(share.expires_at);
  $("share-expiry").dateTime = isoTime(share.expires_at);
  $("share-left").textContent = `expires ${relativeTime(share.expires_at)}`;
  $("share-reused").hidden = !share.reused;
  const left = share.downloads_left;
  $("share-downloads-left").hidden = left == null;
  $("share-has-password").hidden = !share.password;
  $("share-downloads-left").textContent = left === 1 ? "One download, then the link is gone."
    : `${left} downloads, then the link is gone.`;
  $("share-url").value = share.url;
  // The QR code of a link with a key is drawn here: the server must not see the key.
  $("share-qr").hidden = Boolean(share.encrypted);
  $("share-qr-local").hidden = !share.encrypted;
  if (share.encrypted) $("share-qr-local").replaceChildren(qrElement(share.url, "QR code of the download link"));
  else $("share-qr").src = qrURL(share.token);
}

/** onChange: called when a link was made, so the history can list it. */
export async function openShareDialog(item, onChange) {
  const share = await withKey(item, await shareItem(item.id));
  shown = {item, share, onChange};
  show(share);
  if (!share.reused) onChange?.();
  dialog.showModal();
  $("share-copy").focus();
  return share;
}
