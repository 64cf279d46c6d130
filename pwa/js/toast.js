// One short message at the bottom of the screen, read out by screen readers.
import {$} from "./dom.js";

let timer = null;

export function showToast(message, tone = "info", milliseconds = 3500) {
  const toast = $("toast");
  if (!toast) return;
  toast.textContent = message;
  toast.dataset.tone = tone;
  toast.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => { toast.hidden = true; }, milliseconds);
}
