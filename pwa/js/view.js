// Drawing the app: the current buffer, the history and the status line.
// Pure rendering; what the buttons do comes in as `actions`.
import {$, h, replaceChildren} from "./dom.js";
import {absoluteTime, fileKind, formatSize, isoTime, isPreviewable, relativeTime} from "./format.js";
import {itemURL} from "./api.js";
import {linksNote} from "./links.js";

const SHOWN_TEXT = 100_000; // characters drawn; Copy always copies everything

function timeElement(seconds, prefix = "") {
  return h("time", {datetime: isoTime(seconds), title: absoluteTime(seconds), dataset: {prefix, seconds: String(seconds)}},
    prefix + relativeTime(seconds));
}

/** Relative times ("3 min ago") move on without redrawing anything else. */
export function refreshTimes() {
  for (const element of document.querySelectorAll("time[data-seconds]")) {
    element.textContent = element.dataset.prefix + relativeTime(Number(element.dataset.seconds));
  }
}

function badge(item, small = false) {
  if (item.kind === "text" || item.type === "text") {
    return h("span", {class: `file-badge text-badge${small ? " small" : ""}`, "aria-hidden": "true"}, "TXT");
  }
  const {kind, label} = fileKind(item.mime, item.filename);
  return h("span", {class: `file-badge${small ? " small" : ""}`, dataset: {kind}, "aria-hidden": "true"}, label);
}

/** "from Firefox on Android · 2 min ago · expires in 2 h" */
function metaLine(item) {
  return [
    item.encrypted ? h("span", {class: "tag", title: "End-to-end encrypted"}, "encrypted") : "",
    item.replayed ? h("span", {class: "tag warning", title: "The server sent an item this device had already seen under another number"},
      "seen before") : "",
    item.from ? `from ${item.from} · ` : "",
    timeElement(item.created_at),
    item.expires_at ? [" · ", timeElement(item.expires_at, "expires ")] : "",
  ];
}

/**
 * current: the last `buffer` message (kind null: empty).
 * text: the text of a text item, when known.
 */
export function renderCurrent(current, text, actions, {offline = false} = {}) {
  const body = $("current-body");
  const meta = $("current-meta");
  $("current").setAttribute("aria-busy", "false");
  if (!current || !current.kind) {
    replaceChildren(meta);
    replaceChildren(body, h("div", {class: "empty-state"},
      h("strong", {}, "Your buffer is empty"),
      "Send text or a file from any of your devices and it appears here, and on all the others."));
    return;
  }
  replaceChildren(meta, metaLine(current));
  if (current.locked) {
    replaceChildren(body, h("p", {class: "empty-state", id: "current-locked"}, `Encrypted: ${current.locked}`));
    return;
  }
  if (current.kind === "text") {
    const known = typeof text === "string";
    const shown = known ? text.slice(0, SHOWN_TEXT) : (offline ? "This text is not available offline." : "Loading…");
    const classes = ["buffer-text"];
    if (known && text.length > 400) classes.push("long");
    if (known && text.length > SHOWN_TEXT) classes.push("truncated");
    replaceChildren(body,
      h("pre", {class: classes.join(" "), id: "current-text", tabindex: "0", "aria-label": "Text in the buffer"}, shown),
      h("div", {class: "actions"},
        h("button", {type: "button", class: "primary", id: "copy-current", onclick: () => actions.copy(current),
          disabled: !known && offline}, "Copy"),
        h("span", {class: "meta"}, formatSize(current.size))));
    return;
  }
  // An encrypted image's preview is the small one made on the sending device.
  const previewURL = current.encrypted ? current.preview : (isPreviewable(current.mime, current.size) && !offline
    ? itemURL(current.id) : null);
  const preview = previewURL
    ? h("img", {class: "buffer-image", src: previewURL, alt: `Preview of ${current.filename}`, decoding: "async"})
    : null;
  replaceChildren(body,
    preview,
    h("div", {class: "buffer-file"},
      badge(current),
      h("div", {},
        h("p", {class: "name", id: "current-filename"}, current.filename),
        h("p", {class: "meta"}, `${formatSize(current.size)} · ${current.mime || "file"}`))),
    h("div", {class: "actions"},
      current.encrypted
        ? h("button", {type: "button", class: "primary", id: "download-current", onclick: () => actions.download(current),
          disabled: offline}, "Download")
        : h("a", {class: "button primary", href: itemURL(current.id), download: current.filename, id: "download-current"},
          "Download"),
      h("button", {type: "button", onclick: () => actions.share(current), disabled: offline}, "Share link")));
}

/** `total`: the whole history's length when `items` are a search's matches. */
export function renderHistory(items, texts, currentId, actions, {offline = false, total = null} = {}) {
  const list = $("history");
  const searching = total !== null;
  $("history-empty").hidden = searching || items.length > 0;
  $("history-no-match").hidden = !searching || items.length > 0;
  const count = `${items.length} item${items.length === 1 ? "" : "s"}`;
  $("history-count").textContent = searching ? `${items.length} of ${total}` : (items.length ? count : "");
  replaceChildren(list, items.map((item) => historyItem(item, texts[item.id], item.id === currentId, actions, offline)));
}

function historyItem(item, text, isCurrent, actions, offline) {
  const isText = item.type === "text";
  const name = isText ? "text" : item.filename;
  const preview = item.locked ? h("p", {class: "preview"}, `Encrypted: ${item.locked}`) : isText
    ? h("p", {class: "preview"}, typeof text === "string" ? text.slice(0, 300) : "…")
    : h("p", {class: "preview filename"}, item.filename);
  const when = relativeTime(item.created_at);
  const buttons = isText
    ? [h("button", {type: "button", class: "small", onclick: () => actions.copy(item),
        "aria-label": `Copy text from ${when}`}, "Copy")]
    : [item.encrypted
        ? h("button", {type: "button", class: "small", onclick: () => actions.download(item), disabled: offline || item.locked,
          "aria-label": `Download ${name}`}, "Download")
        : h("a", {class: "button small", href: itemURL(item.id), download: item.filename,
          "aria-label": `Download ${name}`}, "Download"),
       h("button", {type: "button", class: "small", onclick: () => actions.share(item), disabled: offline,
         "aria-label": `Share link for ${name}`}, "Share link")];
  buttons.push(h("button", {type: "button", class: "small danger", onclick: () => actions.remove(item), disabled: offline,
    "aria-label": `Delete ${isText ? `text from ${when}` : name}`}, "Delete"));
  // Images show themselves, small (lazy: only rows scrolled to load theirs).
  const thumbURL = item.encrypted ? item.preview
    : (!isText && !offline && isPreviewable(item.mime, item.size) ? itemURL(item.id) : null);
  const thumbnail = !isText && thumbURL
    ? h("img", {class: "thumb", src: thumbURL, alt: "", width: 40, height: 40, loading: "lazy", decoding: "async"})
    : badge(item, true);
  return h("li", {class: `history-item${isCurrent ? " is-current" : ""}`, dataset: {id: String(item.id), type: item.type}},
    thumbnail,
    h("div", {},
      preview,
      h("div", {class: "meta"}, isText ? "" : `${formatSize(item.size)} · `, metaLine(item),
        isCurrent ? h("span", {class: "tag"}, "in the buffer") : ""),
      isText ? "" : linksNote(item)),
    h("div", {class: "actions"}, buttons));
}

const STATE_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  // Two different troubles, told apart: this device has no network, or it
  // has one and the server does not answer (down, restarting, busy).
  reconnecting: "Reconnecting… the server does not answer yet",
  offline: "Offline — no network; showing what this device last received",
};

export function renderStatus(state, devices, selfId) {
  const status = $("status");
  status.dataset.state = state;
  $("status-text").textContent = STATE_TEXT[state] || state;
  const online = state === "connected" ? devices : [];
  $("devices-label").textContent = online.length ? `${online.length} device${online.length === 1 ? "" : "s"} online:` : "";
  replaceChildren($("devices"), online.map((device) =>
    h("li", {class: device.id === selfId ? "self" : ""}, device.name, device.id === selfId ? " (this device)" : "")));
}
