// Sizes, times and file kinds as people read them.

export function formatSize(bytes) {
  if (bytes === undefined || bytes === null) return "";
  if (bytes < 1024) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "bytes";
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** "just now", "3 min ago", "in 2 h" — `seconds` is a unix time (seconds). */
export function relativeTime(seconds, now = Date.now() / 1000) {
  if (!seconds) return "";
  const delta = seconds - now;
  const abs = Math.abs(delta);
  if (abs < 45) return "just now";
  let amount;
  let unit;
  if (abs < 3600) [amount, unit] = [Math.max(1, Math.round(abs / 60)), "min"];
  else if (abs < 86400) [amount, unit] = [Math.round(abs / 3600), "h"];
  else [amount, unit] = [Math.round(abs / 86400), "d"];
  return delta > 0 ? `in ${amount} ${unit}` : `${amount} ${unit} ago`;
}

export function absoluteTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
}

export function isoTime(seconds) {
  return new Date(seconds * 1000).toISOString();
}

const KINDS = [
  ["pdf", /^application\/pdf$/, /\.pdf$/i],
  ["image", /^image\//, /\.(png|jpe?g|gif|webp|avif|heic|svg|bmp)$/i],
  ["video", /^video\//, /\.(mp4|mov|mkv|webm|avi)$/i],
  ["audio", /^audio\//, /\.(mp3|m4a|ogg|opus|wav|flac)$/i],
  ["archive", /(zip|tar|gzip|x-7z|rar|x-xz|x-bzip)/, /\.(zip|tar|gz|tgz|7z|rar|xz|bz2)$/i],
  ["code", /(javascript|json|x-python|x-sh|xml|x-c)/, /\.(js|mjs|ts|json|py|sh|c|h|rs|go|java|rb|xml|yaml|yml|toml)$/i],
  ["document", /(msword|officedocument|opendocument|rtf)/, /\.(docx?|xlsx?|pptx?|odt|ods|odp|rtf)$/i],
  ["text", /^text\//, /\.(txt|md|csv|log)$/i],
];

/** {kind, label}: a category for the badge colour and a short label ("PDF"). */
export function fileKind(mime = "", filename = "") {
  const match = KINDS.find(([, mimeRe, nameRe]) => mimeRe.test(mime) || nameRe.test(filename));
  const kind = match ? match[0] : "other";
  const dot = filename.lastIndexOf(".");
  let label = dot > 0 && filename.length - dot <= 6 ? filename.slice(dot + 1) : "";
  if (!label) label = kind === "other" ? "file" : kind;
  return {kind, label: label.slice(0, 5)};
}

/** Images worth previewing inline (small enough, a format browsers show). */
export function isPreviewable(mime = "", size = 0) {
  return /^image\/(png|jpe?g|gif|webp|avif|svg\+xml|bmp)$/.test(mime) && size <= 25 * 1024 * 1024;
}

/** "12 s", "3 min", "1 h 5 min" — a duration to come. */
export function formatDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.round((seconds - hours * 3600) / 60)} min`;
}

/**
 * An upload's progress as people read it: "42 % · 1.2 MB of 3.0 MB ·
 * 350 KB/s · 5 s left". The speed is averaged since the start (the first
 * half second says nothing of speed yet), so the time left does not jump.
 */
export function progressText(loaded, total, startedAt, now = performance.now()) {
  const percent = total ? Math.floor((100 * loaded) / total) : 100;
  const parts = [`${percent} %`, `${formatSize(loaded)} of ${formatSize(total)}`];
  const elapsed = (now - startedAt) / 1000;
  if (elapsed >= 0.5 && loaded > 0) {
    const speed = loaded / elapsed;
    parts.push(`${formatSize(Math.round(speed))}/s`);
    if (loaded < total) parts.push(`${formatDuration((total - loaded) / speed)} left`);
  }
  return parts.join(" · ");
}
