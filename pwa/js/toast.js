// One short message at the bottom of the screen, read out by screen readers,
// with at most one action (Undo).
import {$, h, replaceChildren} from "./dom.js";

let timer = null;

/** action: {label, run} adds a button that runs it and closes the toast. */
export function showToast(message, tone = "info", milliseconds = 3500, action = null) {
  const toast = $("toast");
  if (!toast) return;
  const button = action && h("button", {type: "button", class: "small toast-action", onclick: () => {
    hideToast();
    action.run();
  }}, action.label);
  replaceChildren(toast, h("span", {}, message), button);
  toast.dataset.tone = tone;
  toast.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(hideToast, milliseconds);
}

export function hideToast() {
  clearTimeout(timer);
  const toast = $("toast");
  if (toast) toast.hidden = true;
}
