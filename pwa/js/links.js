// A file's live share links, as a line in its history row: how many, and
// the time left on the one that lasts longest.
import {h} from "./dom.js";
import {absoluteTime, isoTime, relativeTime} from "./format.js";

export function linksNote(item) {
  const links = (item.links || []).filter((link) => link.expires_at > Date.now() / 1000);
  if (!links.length) return "";
  const longest = links[0].expires_at; // the server lists the most time left first
  const prefix = links.length === 1 ? "Shared · link expires " : `Shared · ${links.length} links, the last expires `;
  return h("p", {class: "meta links-note"},
    h("time", {datetime: isoTime(longest), title: absoluteTime(longest), dataset: {prefix, seconds: String(longest)}},
      prefix + relativeTime(longest)));
}
