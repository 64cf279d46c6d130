// The history's search box and kind filter. Online the server answers
// (GET /file/buffer/items?q=&kind=); offline, or when the server cannot be
// reached, the same rule runs here over the history this device keeps.
import {$} from "./dom.js";
import {NetworkError, listItems} from "./api.js";

const WAIT_MS = 200; // typing pauses this long before the server is asked

/** Case-insensitive substring match of texts and filenames, like the server's. */
export function matches(item, text, {query, kind}) {
  if (kind && item.type !== kind) return false;
  if (!query) return true;
  const haystack = item.type === "text" ? text : item.filename;
  return typeof haystack === "string" && haystack.toLowerCase().includes(query.toLowerCase());
}

/**
 * Wires the box and the filter buttons. `onChange(filter)` runs whenever
 * the filter changes; `filter.active` says whether anything is filtered.
 */
export class HistorySearch {
  constructor(onChange) {
    this.filter = {query: "", kind: "", active: false};
    this.onChange = onChange;
    this.timer = null;
    this.box = $("history-search");
    this.buttons = [...document.querySelectorAll("#history-kinds button")];
    this.box.addEventListener("input", () => this.update());
    this.box.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.box.value) {
        this.box.value = "";
        this.update();
      }
    });
    for (const button of this.buttons) {
      button.addEventListener("click", () => {
        for (const other of this.buttons) other.setAttribute("aria-pressed", String(other === button));
        this.update();
      });
    }
  }

  update() {
    const pressed = this.buttons.find((button) => button.getAttribute("aria-pressed") === "true");
    const query = this.box.value.trim();
    const kind = pressed ? pressed.dataset.kind : "";
    this.filter = {query, kind, active: Boolean(query || kind)};
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onChange(this.filter), query ? WAIT_MS : 0);
  }
}

/**
 * The items matching `filter`: the server's answer, or, offline, the
 * local history filtered here. Resolves with {items, offline}.
 */
export async function findItems(filter, localItems, texts, {offline}) {
  const local = () => localItems.filter((item) => matches(item, texts[item.id], filter));
  if (offline) return {items: local(), offline: true};
  try {
    return {items: await listItems({q: filter.query, kind: filter.kind}), offline: false};
  } catch (error) {
    if (error instanceof NetworkError) return {items: local(), offline: true};
    throw error;
  }
}
