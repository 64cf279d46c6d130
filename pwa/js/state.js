// The last known buffer and history, kept in localStorage per user so the app
// opens offline (and instantly) with what it last saw.

const PREFIX = "cloudbuffer:state:";
const TEXT_KEEP = 64 * 1024; // texts longer than this are not kept offline

export function loadState(username) {
  try {
    const saved = JSON.parse(localStorage.getItem(PREFIX + username) || "null");
    if (saved && typeof saved.seq === "number") return saved;
  } catch { /* a damaged entry is as good as none */ }
  return null;
}

export function saveState(username, {seq, current, items, texts}) {
  const keptTexts = {};
  for (const item of items || []) {
    const text = texts[item.id];
    if (typeof text === "string" && text.length <= TEXT_KEEP) keptTexts[item.id] = text;
  }
  const state = {seq, current, items, texts: keptTexts, saved_at: Date.now() / 1000};
  try {
    localStorage.setItem(PREFIX + username, JSON.stringify(state));
  } catch {
    // Storage full or disabled: the app still works online.
  }
}

/** Logout: nothing of this user stays on the device. */
export function forgetAll() {
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith(PREFIX)) localStorage.removeItem(key);
  }
}
