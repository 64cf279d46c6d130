// The live socket (/ws): connects, keeps the link alive with pings, and
// reconnects with backoff on close, when the network comes back (`online`)
// and when the page becomes visible again (PairDrop style). It knows nothing
// about the buffer; the app listens to its events:
//   "state"   detail: "connecting" | "connected" | "reconnecting" | "offline"
//   "message" detail: a parsed server message ({type: "hello" | "buffer" | …})
//   "revoked" this device was logged out (close code 4401; detail: the reason)
// docs/protocol.md describes the messages.

import {toB64u} from "./e2e/b64u.js";

const PING_EVERY = 25_000; // the server drops pinging clients after 60 s of silence
const SILENCE_LIMIT = 55_000; // no message for this long: the link is dead
const BACKOFF_MAX = 30_000;
const TRY_AGAIN_LATER = 30_000; // close code 1013: too many connections
const ACK_TIMEOUT = 10_000;

export class LiveClient extends EventTarget {
  constructor(url = defaultURL()) {
    super();
    this.url = url;
    this.socket = null;
    this.state = "connecting";
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.nextId = 1;
    this.waiting = new Map(); // set id → {resolve, reject, timer}
    this.stopped = false;
    window.addEventListener("online", () => this.connectNow());
    window.addEventListener("offline", () => this.dropLink("offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.check();
    });
  }

  start() {
    this.connect();
  }

  /** For good (the page is logging out): no more reconnects. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "logging out");
  }

  get connected() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) {
      this.setState("offline");
      return; // the `online` event brings us back
    }
    if (this.state !== "connected" && this.attempt === 0) this.setState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.lastHeard = Date.now();
      this.setState("connected");
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY);
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "ack") this.settle(message.id, message);
      if (message.type === "pong") return;
      this.dispatchEvent(new CustomEvent("message", {detail: message}));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      clearInterval(this.pingTimer);
      this.failWaiting(new Error("The connection was lost before the server confirmed."));
      if (event.code === 4401) {
        this.stopped = true;
        this.dispatchEvent(new CustomEvent("revoked", {detail: event.reason}));
        return;
      }
      this.scheduleReconnect(event.code === 1013 ? TRY_AGAIN_LATER : null);
    });
  }

  /** Reconnect at once (network back, page visible again). */
  connectNow() {
    this.attempt = 0;
    this.connect();
  }

  /** The page came back: a socket that slept with the phone may be dead. */
  check() {
    if (!this.connected) {
      this.connectNow();
    } else if (Date.now() - this.lastHeard > PING_EVERY) {
      this.ping();
      const asked = Date.now();
      setTimeout(() => {
        if (this.connected && this.lastHeard < asked) this.dropLink("reconnecting");
      }, 5000);
    }
  }

  ping() {
    if (!this.connected) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT) {
      this.dropLink("reconnecting");
      return;
    }
    this.send({type: "ping", t: Date.now()});
  }

  /** Close a link we believe dead and start over. */
  dropLink(state) {
    const socket = this.socket;
    this.socket = null;
    clearInterval(this.pingTimer);
    this.failWaiting(new Error("The connection was lost before the server confirmed."));
    if (socket) socket.close();
    if (state === "offline") {
      clearTimeout(this.retryTimer);
      this.setState("offline");
    } else {
      this.scheduleReconnect();
    }
  }

  scheduleReconnect(delay = null) {
    if (this.stopped) return;
    this.setState(navigator.onLine ? "reconnecting" : "offline");
    if (!navigator.onLine) return;
    const backoff = Math.min(BACKOFF_MAX, 1000 * 2 ** this.attempt);
    this.attempt += 1;
    const wait = delay ?? backoff * (0.75 + Math.random() * 0.5);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  send(message) {
    if (!this.connected) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Put text in the buffer over the socket; resolves with the `ack`. */
  setText(text) {
    return this.sendSet({type: "set", text});
  }

  /** The same for an encrypted text: {keyBlob, meta, body} (docs/e2e.md). */
  setEncrypted({keyBlob, meta, body}) {
    return this.sendSet({type: "set", encrypted: "aes128gcm", key: keyBlob, meta, ciphertext: toB64u(body)});
  }

  sendSet(message) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send({...message, id})) {
        reject(new Error("Not connected."));
        return;
      }
      const timer = setTimeout(() => this.settle(id, null, new Error("The server did not confirm in time.")), ACK_TIMEOUT);
      this.waiting.set(id, {resolve, reject, timer});
    });
  }

  /** A `set` was refused: the server's `error` does not name the request,
   * so the oldest waiting one takes it. */
  rejectOldest(error) {
    const first = this.waiting.keys().next();
    if (!first.done) this.settle(first.value, null, error);
  }

  settle(id, message, error = null) {
    const waiter = this.waiting.get(id);
    if (!waiter) return;
    this.waiting.delete(id);
    clearTimeout(waiter.timer);
    if (error) waiter.reject(error);
    else waiter.resolve(message);
  }

  failWaiting(error) {
    for (const id of [...this.waiting.keys()]) this.settle(id, null, error);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", {detail: state}));
  }
}

function defaultURL() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
