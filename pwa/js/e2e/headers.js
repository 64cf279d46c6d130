// The headers of an encrypted write (POST /file/buffer, /file/load,
// docs/e2e.md): the key blob (none for a share link), the meta blob, the kind.
export const ENCRYPTED = "aes128gcm";

export function encryptedHeaders({keyBlob, meta}, kind) {
  const headers = {"X-Encrypted": ENCRYPTED, "X-Encrypted-Meta": meta, "X-Data-Type": kind,
    "Content-Type": "application/octet-stream"};
  if (keyBlob) headers["X-Encrypted-Key"] = keyBlob;
  return headers;
}
