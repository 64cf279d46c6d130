// Login and register pages: say that a share made while logged out is kept
// on this device and will be sent after logging in.
import {countPending} from "./pending-shares.js";

const notice = document.getElementById("pending-notice");
if (notice && "indexedDB" in window) {
  countPending().then((count) => { notice.hidden = count === 0; }).catch(() => {});
}
