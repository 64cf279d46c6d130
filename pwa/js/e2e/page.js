// The vault of the account a page is logged in to (base.html puts its
// username and id on <body>), made current for every write path.
import {useVault} from "./current.js";
import {openVault} from "./vault.js";

export function viewer() {
  const {username, userId} = document.body.dataset;
  return username ? {username, userId: Number(userId)} : null;
}

/** Resolves with the vault (null: not encrypted, or nobody logged in). */
export async function pageVault() {
  const who = viewer();
  if (!who || !("indexedDB" in window)) return null;
  const vault = await openVault(who.username, who.userId);
  useVault(vault);
  return vault;
}
