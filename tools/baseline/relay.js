#!/usr/bin/env node
// The benchmark's baseline: the rtcserver room protocol in the fewest lines Node and
// `ws` allow, so a figure for rtcserver can be read against "what a plain event-loop
// relay does on this machine". It implements exactly what a client sees:
//
//   {"type":"GETROOM","value":""}  -> {"type":"GETROOM","value":N}, sender is in room N
//   {"type":"ENTERROOM","value":N} -> creator gets {"type":"PEERJOINED"}, or the
//                                     sender gets {"type":"WRONGROOM","value":N}
//   anything else                  -> relayed verbatim to the other member, never echoed
//   a member leaves                -> the other gets {"type":"PEERLEFT"}
//   bad input                      -> {"type":"ERROR","code":..,"message":..}
//
// GET /healthz answers {"status":"ok","connections":C,"rooms":R}. It prints
// "baseline listening on http://HOST:PORT/" once bound (port 0 picks a free one).
//
// Usage: node relay.js [--host 127.0.0.1] [--port 0]
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));
const ROOM_CAPACITY = 2;

const rooms = new Map(); // room number -> Set of sockets
let connections = 0;

function newRoomNumber() {
  for (;;) {
    const n = 1 + Math.floor(Math.random() * 999999999);
    if (!rooms.has(n)) return n;
  }
}

function leave(ws) {
  const room = ws.room;
  if (room === undefined) return;
  ws.room = undefined;
  const members = rooms.get(room);
  if (!members) return;
  members.delete(ws);
  if (members.size === 0) {
    rooms.delete(room);
    return;
  }
  for (const peer of members) peer.send('{"type":"PEERLEFT"}');
}

function join(ws, room) {
  leave(ws);
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  ws.room = room;
}

function sendError(ws, code, message) {
  ws.send(JSON.stringify({ type: 'ERROR', code, message }));
}

function handle(ws, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return sendError(ws, 'bad_json', 'message is not JSON');
  }
  if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
    return sendError(ws, 'bad_message', 'message needs a string "type"');
  }
  switch (msg.type) {
    case 'GETROOM': {
      const room = newRoomNumber();
      join(ws, room);
      ws.send(JSON.stringify({ type: 'GETROOM', value: room }));
      return;
    }
    case 'ENTERROOM': {
      const room = Number(msg.value);
      const members = rooms.get(room);
      if (!Number.isInteger(room) || !members || members.size >= ROOM_CAPACITY || members.has(ws)) {
        ws.send(JSON.stringify({ type: 'WRONGROOM', value: msg.value }));
        return;
      }
      const others = [...members];
      join(ws, room);
      for (const peer of others) peer.send('{"type":"PEERJOINED"}');
      return;
    }
    default: {
      const members = ws.room === undefined ? undefined : rooms.get(ws.room);
      if (!members) return;
      for (const peer of members) if (peer !== ws) peer.send(text);
    }
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', connections, rooms: rooms.size }));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  connections += 1;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return sendError(ws, 'bad_message', 'binary frames are not accepted');
    handle(ws, data.toString());
  });
  ws.on('close', () => {
    connections -= 1;
    leave(ws);
  });
  ws.on('error', () => {});
});

server.listen(port, host, () => {
  const addr = server.address();
  process.stdout.write(`baseline listening on http://${addr.address}:${addr.port}/\n`);
});

function shutdown() {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
