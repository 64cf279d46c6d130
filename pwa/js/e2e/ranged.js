// An encrypted body fetched in Range requests that fall on whole records
// (docs/e2e.md) and decrypted piece by piece into a Blob: the page holds one
// piece (4 MiB) at a time, and each answer is read whole, so no stream is
// left half-read. `get(range)` fetches with that Range header and resolves
// with the Response; a server that ignores Range gets decrypted whole.
import {CiphertextError, Decryptor, RECORD_SIZE, decryptBytes, parseHeader} from "./ece.js";

const SPAN = 64 * RECORD_SIZE; // records per request
const HEADER = 21; // salt, rs, idlen = 0: item bodies have no keyid

export async function fetchDecrypted(get, key, {type = "application/octet-stream", onProgress = () => {}} = {}) {
  const first = await get(`bytes=0-${HEADER + SPAN - 1}`);
  if (first.status !== 206) {
    return new Blob([await decryptBytes(key, new Uint8Array(await first.arrayBuffer()), {expectKeyid: ""})], {type});
  }
  const total = Number((first.headers.get("Content-Range") || "").split("/")[1]);
  if (!Number.isFinite(total)) throw new CiphertextError("The server's answer does not say how long the file is.");
  let bytes = new Uint8Array(await first.arrayBuffer());
  const header = parseHeader(bytes);
  if (header.keyid !== "" || header.length !== HEADER || header.rs !== RECORD_SIZE) {
    throw new CiphertextError("This body is not under its item's key.");
  }
  const decryptor = await Decryptor.create(key, header);
  const parts = [];
  let at = HEADER; // the ciphertext offset of bytes[offset]
  let offset = HEADER;
  for (;;) {
    const end = at - offset + bytes.length; // ciphertext offset just past what we hold
    const next = end < total ? get(`bytes=${end}-${Math.min(total, end + SPAN) - 1}`) : null; // fetched while we decrypt
    const jobs = [];
    for (let i = offset; i < bytes.length; i += header.rs) {
      const record = bytes.subarray(i, Math.min(bytes.length, i + header.rs));
      jobs.push(decryptor.record(record, at + (i - offset) + record.length >= total));
    }
    parts.push(new Blob(await Promise.all(jobs)));
    onProgress(Math.min(end, total), total);
    if (!next) break;
    const answer = await next;
    if (answer.status !== 206) throw new CiphertextError("The server stopped answering in ranges.");
    bytes = new Uint8Array(await answer.arrayBuffer());
    at = end;
    offset = 0;
    if (!bytes.length) throw new CiphertextError("The data is cut short.");
  }
  return new Blob(parts, {type});
}
