#!/usr/bin/env node
// The directory benchmark's baseline (issue 12): the simplest possible Node directory
// server. A name -> socket map that broadcasts every join, leave and presence change to
// everyone, one frame per event per user, with the frames rtcserver's protocol v1 used:
//
//   {"type":"LOGIN","name":N}  -> {"type":"LOGIN","success":true,"name":N},
//                                 {"type":"USERS","users":[{name,status},...]} (the others),
//                                 {"type":"USERJOINED","name":N,"status":"available"} to all
//   a logged-in socket closes  -> {"type":"USERLEFT","name":N} to all
//   {"type":"CALL","to":B}     -> INCOMINGCALL to B, RINGING to the caller,
//                                 {"type":"PRESENCE","name":..,"status":"in-call"} x2 to all
//   {"type":"ACCEPT","call":C} -> {"type":"CALLACCEPTED","call":C,"room":R} to both
//
// No limits, no validation beyond the shape: a baseline for the cost of the frames.
// GET /healthz answers {"status":"ok","connections":C,"users":U}. Prints
// "baseline listening on http://HOST:PORT/" once bound (port 0 picks a free one).
//
// Usage: node directory.js [--host 127.0.0.1] [--port 0]
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));

const users = new Map(); // name -> socket
const status = new Map(); // name -> "available" | "in-call"
const calls = new Map(); // call id -> [caller, callee]
let connections = 0;
let nextCall = 1;
let nextRoom = 1;

function broadcast(text, except) {
  for (const [name, ws] of users) if (name !== except) ws.send(text);
}

function setStatus(name, value) {
  status.set(name, value);
  broadcast(JSON.stringify({ type: 'PRESENCE', name, status: value }));
}

function handle(ws, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return;
  }
  if (msg === null || typeof msg !== 'object') return;
  switch (msg.type) {
    case 'LOGIN': {
      const name = String(msg.name);
      if (ws.name !== undefined || users.has(name)) {
        ws.send(JSON.stringify({ type: 'LOGIN', success: false, reason: 'name taken' }));
        return;
      }
      const others = [...users.keys()].map((n) => ({ name: n, status: status.get(n) }));
      ws.name = name;
      users.set(name, ws);
      status.set(name, 'available');
      ws.send(JSON.stringify({ type: 'LOGIN', success: true, name }));
      ws.send(JSON.stringify({ type: 'USERS', users: others }));
      broadcast(JSON.stringify({ type: 'USERJOINED', name, status: 'available' }), name);
      return;
    }
    case 'CALL': {
      const callee = users.get(String(msg.to));
      if (ws.name === undefined || !callee) return;
      const id = String(nextCall++);
      calls.set(id, [ws.name, callee.name]);
      callee.send(JSON.stringify({ type: 'INCOMINGCALL', from: ws.name, call: id, media: msg.media }));
      ws.send(JSON.stringify({ type: 'RINGING', call: id }));
      setStatus(ws.name, 'in-call');
      setStatus(callee.name, 'in-call');
      return;
    }
    case 'ACCEPT': {
      const parties = calls.get(String(msg.call));
      if (!parties) return;
      const text = JSON.stringify({ type: 'CALLACCEPTED', call: msg.call, room: nextRoom++ });
      for (const name of parties) {
        const peer = users.get(name);
        if (peer) peer.send(text);
      }
      return;
    }
    default:
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', connections, users: users.size }));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  connections += 1;
  ws.on('message', (data, isBinary) => {
    if (!isBinary) handle(ws, data.toString());
  });
  ws.on('close', () => {
    connections -= 1;
    if (ws.name !== undefined && users.get(ws.name) === ws) {
      users.delete(ws.name);
      status.delete(ws.name);
      broadcast(JSON.stringify({ type: 'USERLEFT', name: ws.name }));
    }
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
