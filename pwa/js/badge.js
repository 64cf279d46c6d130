// While the tab is hidden, count what arrives in the title ("(2) CloudBuffer")
// and on the app icon where the Badging API exists; clear it on return.

let unseen = 0;
const baseTitle = document.title;

export function noteArrival() {
  if (!document.hidden) return;
  unseen += 1;
  document.title = `(${unseen}) ${baseTitle}`;
  navigator.setAppBadge?.(unseen).catch(() => {});
}

function clear() {
  if (document.hidden || unseen === 0) return;
  unseen = 0;
  document.title = baseTitle;
  navigator.clearAppBadge?.().catch(() => {});
}

document.addEventListener("visibilitychange", clear);
window.addEventListener("focus", clear);
