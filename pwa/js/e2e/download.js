// Saving an encrypted item: the body is decrypted as it streams in, into a
// Blob (which the browser may keep on disk), then handed over as a download
// under the item's real name.

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename || "file";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own reference by now; the page's goes once it started.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
