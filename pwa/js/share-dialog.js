// "Share link" on a file: the file's live link (the server hands the same
// one back), or a new one with the lifetime and download limit the person picks; shown with its
// QR code, expiry and time left, Copy link and, on phones, the share sheet.
import {$} from "./dom.js";
import {qrURL, shareItem} from "./api.js";
import {copyText} from "./clipboard.js";
import {absoluteTime, formatSize, isoTime, relativeTime} from "./format.js";
import {showToast} from "./toast.js";

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
    const share = await shareItem(shown.item.id, {new: true, expiresIn: Number($("share-lifetime").value),
                                                  maxDownloads: downloads, password: $("share-password").value});
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
  $("share-qr").src = qrURL(share.token);
}

/** onChange: called when a link was made, so the history can list it. */
export async function openShareDialog(item, onChange) {
  const share = await shareItem(item.id);
  shown = {item, share, onChange};
  show(share);
  if (!share.reused) onChange?.();
  dialog.showModal();
  $("share-copy").focus();
  return share;
}
