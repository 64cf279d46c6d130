// Files dropped anywhere on the page, and images pasted outside the text box
// (or files pasted into it), go to `onFiles`.
import {$} from "./dom.js";
import {stamp} from "./clipboard.js";

export function acceptDroppedFiles(onFiles) {
  const overlay = $("drop-overlay");
  let depth = 0; // dragenter/leave fire for every child element
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");

  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const files = [...event.dataTransfer.files];
    if (files.length) onFiles(files);
  });

  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].map(nameImage);
    if (!files.length) return; // text paste: the text box takes it as usual
    event.preventDefault();
    onFiles(files);
  });
}

/** Pasted screenshots are all called "image.png"; give them a useful name. */
function nameImage(file) {
  if (file.name && file.name !== "image.png") return file;
  const extension = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
  return new File([file], `pasted-image-${stamp()}.${extension}`, {type: file.type});
}
