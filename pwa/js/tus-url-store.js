// Where tus-js-client keeps the address of each unfinished upload, so that
// choosing the same file again after a reload (or the app sending a share it
// kept) continues at the server's offset instead of byte 0. IndexedDB, not
// tus-js-client's default localStorage: the issue asks for it, a service
// worker or another tab can read it, and logging out deletes it whole
// (forget-on-logout.js). The interface is tus-js-client's UrlStorage:
// findAllUploads, findUploadsByFingerprint, removeUpload, addUpload.
export const UPLOADS_DB = "cloudbuffer-uploads";
const STORE = "tus";

function openDB() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(UPLOADS_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: "key"});
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  // Closed after each use, so that deleting the database at logout is never blocked.
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const result = action(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(result.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

const asPrevious = (record) => ({...record.upload, fingerprint: record.fingerprint, urlStorageKey: record.key});
const newest = (a, b) => String(b.creationTime).localeCompare(String(a.creationTime));

export const urlStorage = {
  async findAllUploads() {
    return (await withStore("readonly", (store) => store.getAll())).map(asPrevious).sort(newest);
  },
  async findUploadsByFingerprint(fingerprint) {
    const records = await withStore("readonly", (store) => store.getAll());
    return records.filter((record) => record.fingerprint === fingerprint).map(asPrevious).sort(newest);
  },
  async removeUpload(urlStorageKey) {
    await withStore("readwrite", (store) => store.delete(urlStorageKey));
  },
  async addUpload(fingerprint, upload) {
    const key = `tus::${fingerprint}::${crypto.randomUUID()}`;
    await withStore("readwrite", (store) => store.put({key, fingerprint, upload}));
    return key;
  },
};
