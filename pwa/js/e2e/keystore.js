// This device's keys of an encrypted account, in IndexedDB (database
// "cloudbuffer-e2e"): the device's long-lived P-256 key pair (its private
// key is a CryptoKey that cannot be exported) and the account key of every
// epoch it knows. Logging out deletes them with the rest of the account's data.

export const E2E_DB_NAME = "cloudbuffer-e2e";
const DB_NAME = E2E_DB_NAME;
const STORE = "accounts";

function openDB() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: "username"});
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const request = action(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

/** {username, userId, device: {privateKey, spki}?, keys: {epoch: Uint8Array}} or undefined. */
export const loadAccount = (username) => run("readonly", (store) => store.get(username));
export const saveAccount = (record) => run("readwrite", (store) => store.put(record));
export const forgetAccount = (username) => run("readwrite", (store) => store.delete(username));
export const forgetAllAccounts = () => run("readwrite", (store) => store.clear());

// The item ids this device has seen in an account, with the seq each came
// under (docs/e2e.md: the same id under another seq is an old item replayed),
// kept beside the account's record under a name no username can have, so a
// reload still knows them. Newest last; the oldest fall off past `max`.
const seenName = (username) => `~seen ${username}`;

/** Map of item id → seq. */
export async function loadSeen(username) {
  const record = await loadAccount(seenName(username));
  return new Map(record?.seen || []);
}

/** Adds [[id, seq], …] to what is stored, in one transaction: an id already there keeps its first seq. */
export async function rememberSeen(username, entries, max) {
  const db = await openDB();
  try {
    await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, "readwrite");
      const store = transaction.objectStore(STORE);
      const request = store.get(seenName(username));
      request.onsuccess = () => {
        // Merged, not overwritten: another tab of the same account may have added ids meanwhile.
        const seen = new Map(request.result?.seen || []);
        for (const [id, seq] of entries) {
          if (!seen.has(id)) seen.set(id, seq);
        }
        store.put({username: seenName(username), seen: [...seen].slice(-max)});
      };
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

export const forgetSeen = (username) => forgetAccount(seenName(username));
