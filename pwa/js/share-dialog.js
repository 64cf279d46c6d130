// "Share link" on a file: ask the server for an expiring /file/get link and
// show it with its QR code, expiry and a Copy-link button.
import {$} from "./dom.js";
import {qrURL, shareItem} from "./api.js";
import {copyText} from "./clipboard.js";
import {absoluteTime, formatSize, isoTime} from "./format.js";
import {showToast} from "./toast.js";

const dialog = $("share-dialog");

$("share-copy")?.addEventListener("click", async () => {
  try {
    await copyText($("share-url").value);
    showToast("Link copied.");
  } catch {
    $("share-url").select();
    showToast("Press Ctrl+C to copy the selected link.");
  }
});

export async function openShareDialog(item) {
  const share = await shareItem(item.id);
  $("share-name").textContent = share.filename;
  $("share-size").textContent = formatSize(share.size);
  $("share-expiry").textContent = absoluteTime(share.expires_at);
  $("share-expiry").dateTime = isoTime(share.expires_at);
  $("share-url").value = share.url;
  $("share-qr").src = qrURL(share.token);
  dialog.showModal();
  $("share-copy").focus();
  return share;
}
