// The vault of the account this page is logged in to, once known: the one
// place the write paths (api.js, upload.js, the pending shares) ask whether
// they must encrypt. null: the account is not encrypted (or not known yet).
let vault = null;

export const currentVault = () => vault;

export function useVault(value) {
  vault = value;
  window.dispatchEvent(new CustomEvent("cloudbuffer:vault", {detail: value}));
}
