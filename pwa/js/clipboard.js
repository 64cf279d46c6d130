// The system clipboard: write text (also text that is still being fetched),
// read text and images for "Paste & send".

/** Copy text; `source` is a string or a promise of one (fetched on click). */
export async function copyText(source) {
  if (typeof source !== "string" && window.ClipboardItem && navigator.clipboard?.write) {
    // Handing the clipboard a promise keeps the click's user activation
    // while the text is fetched (Safari insists on this).
    const blob = Promise.resolve(source).then((text) => new Blob([text], {type: "text/plain"}));
    await navigator.clipboard.write([new ClipboardItem({"text/plain": blob})]);
    return;
  }
  const text = await source;
  if (navigator.clipboard?.writeText) {
    await navigator.clipboard.writeText(text);
    return;
  }
  fallbackCopy(text);
}

function fallbackCopy(text) {
  // Old browsers and plain-http origins other than localhost have no async
  // clipboard; a selected off-screen textarea and execCommand still work.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("Copying is not allowed here.");
}

/** What is on the clipboard: {text, files}. Needs a click (user activation). */
export async function readClipboard() {
  if (navigator.clipboard?.read) {
    try {
      const items = await navigator.clipboard.read();
      const files = [];
      let text = "";
      for (const item of items) {
        const image = item.types.find((type) => type.startsWith("image/"));
        if (image) {
          const blob = await item.getType(image);
          const extension = image.split("/")[1].replace("svg+xml", "svg").replace("jpeg", "jpg");
          files.push(new File([blob], `pasted-image-${stamp()}.${extension}`, {type: image}));
        } else if (item.types.includes("text/plain")) {
          text = await (await item.getType("text/plain")).text();
        }
      }
      return {text, files};
    } catch (error) {
      if (!navigator.clipboard.readText) throw error;
    }
  }
  if (!navigator.clipboard?.readText) throw new Error("This browser cannot read the clipboard; paste into the box instead.");
  return {text: await navigator.clipboard.readText(), files: []};
}

export function stamp(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}
