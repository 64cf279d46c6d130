// A pairing this device is waiting on: its ephemeral key pair (the private
// key a CryptoKey that cannot be exported), the other device's key when a
// QR code carried it, and the code. Kept in the key store's database under a
// name no username can have, only until the pairing ends.
import {forgetAccount, loadAccount, saveAccount} from "./keystore.js";

const NAME = "~pairing";

export const savePairing = (pairing) => saveAccount({username: NAME, ...pairing, saved_at: Date.now()});
export const loadPairing = () => loadAccount(NAME);
export const forgetPairing = () => forgetAccount(NAME);
