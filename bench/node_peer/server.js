// The Node.js peer of `make bench` (issue 15), standing for servers such as
// TransparentLC/cloud-clipboard: one process, the `ws` package, every text
// pushed to the sockets of its user from memory. No storage, no Redis, no
// presence, no compression.
//
// Its protocol is the part of CloudBuffer's the benchmarks use, so the same
// load generator drives both:
//   GET  /healthz                   200 {"status":"ok"}
//   POST /file/buffer  (the text)   201 {"seq":…,"size":…}; the text goes to the user's sockets
//   GET  /ws                        WebSocket: {"type":"hello","node":…} first; a
//                                   {"type":"set","text":…,"id":…} goes to the user's
//                                   sockets as a `buffer` message and is acked.
// A credential is `Authorization: Bearer <user id>.<HMAC>` or `?token=` on /ws,
// checked before the handshake completes, as CloudBuffer checks its tokens.
//
//   node bench/node_peer/server.js --port 9000 [--secret S]
'use strict';

const crypto = require('crypto');
const http = require('http');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : fallback;
};
const port = Number(option('--port'));
const secret = option('--secret', process.env.BASELINE_SECRET || 'cloudbuffer-bench-baseline');
const node = crypto.randomBytes(4).toString('hex');
const MAX_TEXT = 1024 * 1024;

// Bench tokens are bench/baseline_ws.py's: "<user id>.<first 32 hex of HMAC-SHA256>".
function userOf(token) {
  const dot = token.indexOf('.');
  const user = token.slice(0, dot);
  if (dot < 1 || !/^[0-9]+$/.test(user)) return null;
  const mac = crypto.createHmac('sha256', secret).update(user).digest('hex').slice(0, 32);
  const given = Buffer.from(token.slice(dot + 1));
  return given.length === 32 && crypto.timingSafeEqual(given, Buffer.from(mac)) ? Number(user) : null;
}

function credential(request) {
  const header = request.headers.authorization || '';
  if (header.toLowerCase().startsWith('bearer ')) return header.slice(7).trim();
  const query = request.url.indexOf('?');
  return query >= 0 ? new URLSearchParams(request.url.slice(query + 1)).get('token') || '' : '';
}

const rooms = new Map(); // user id -> Set of sockets
const seqs = new Map(); // user id -> last seq

function push(user, text) {
  const seq = (seqs.get(user) || 0) + 1;
  seqs.set(user, seq);
  // One encode per event, however many sockets receive it.
  const message = JSON.stringify({ type: 'buffer', seq, kind: 'text', size: Buffer.byteLength(text), text });
  for (const socket of rooms.get(user) || []) socket.send(message);
  return seq;
}

function answer(response, status, body) {
  const data = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  response.end(data);
}

const server = http.createServer((request, response) => {
  const path = request.url.split('?')[0];
  if (request.method === 'GET' && path === '/healthz') return answer(response, 200, { status: 'ok' });
  if (request.method !== 'POST' || path !== '/file/buffer') return answer(response, 404, { error: 'not_found' });
  const user = userOf(credential(request));
  if (user === null) return answer(response, 401, { error: 'unauthorized' });
  const chunks = [];
  let size = 0;
  request.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_TEXT) request.destroy();
    else chunks.push(chunk);
  });
  request.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    answer(response, 201, { seq: push(user, text), size });
  });
});

const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4 * MAX_TEXT });
server.on('upgrade', (request, socket, head) => {
  const user = userOf(credential(request));
  if (request.url.split('?')[0] !== '/ws' || user === null) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  sockets.handleUpgrade(request, socket, head, (ws) => {
    if (!rooms.has(user)) rooms.set(user, new Set());
    rooms.get(user).add(ws);
    ws.send(JSON.stringify({ type: 'hello', node }));
    ws.on('message', (data) => {
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      if (message && message.type === 'set' && typeof message.text === 'string') {
        const seq = push(user, message.text);
        ws.send(JSON.stringify({ type: 'ack', id: message.id ?? null, seq }));
      }
    });
    ws.on('close', () => {
      const room = rooms.get(user);
      room.delete(ws);
      if (room.size === 0) rooms.delete(user);
    });
  });
});

server.keepAliveTimeout = 15000;
server.listen(port, '127.0.0.1');
const stop = () => server.close(() => process.exit(0)) && sockets.clients.forEach((ws) => ws.terminate());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
