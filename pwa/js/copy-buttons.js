// Server pages: a button with data-copy-from="<id>" copies that element's
// value (an input) or text (a <code>), and says so.
import {copyText} from "./clipboard.js";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-from]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyFrom);
  if (!source) return;
  const text = source.value ?? source.textContent.trim();
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  try {
    await copyText(text);
    button.textContent = "Copied!";
  } catch {
    if (source.select) source.select();
    button.textContent = "Press Ctrl+C to copy";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
