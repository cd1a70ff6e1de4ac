// Captures what Node's @socket.io/redis-streams-adapter 0.3 writes (stream entries, pub/sub
// messages, a stored session), as fixtures for the Rust codec tests
// (socketio-redis/tests/fixtures/node-streams.json).
//
//   cd tests && node redis/capture-streams.mjs [output.json]
//
// Starts its own redis-server, two socket.io 4.8 servers A and B on the streams adapter with
// connection state recovery, one socket.io-client on B, and a client subscribed to every
// channel. Each step records the stream entries and the messages it caused.
import http from 'node:http';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { createClient } from 'redis';
import { io as connect } from 'socket.io-client';
import { startRedis } from '../helpers/redis.mjs';
import { REPO_ROOT } from '../helpers/server.mjs';

const OUT = process.argv[2] ?? path.join(REPO_ROOT, 'socketio-redis', 'tests', 'fixtures', 'node-streams.json');
const WAIT_MS = 5000;

const redis = await startRedis();
const clients = [];
async function redisClient() {
  const c = createClient({ url: redis.url });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

const captured = [];
const waiters = [];
const monitor = await redisClient();
const reader = await redisClient();
await monitor.pSubscribe('*', (message, channel) => {
  captured.push({ channel: channel.toString(), payload: Buffer.from(message) });
  for (const w of waiters.splice(0)) w();
}, true);

async function server() {
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(await redisClient()),
    connectionStateRecovery: { maxDisconnectionDuration: 60000 },
  });
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  return { io, httpServer, port: httpServer.address().port };
}

const A = await server();
const B = await server();
B.io.on('connection', (socket) => {
  socket.join('room1');
  socket.data = { user: 'bob' };
  socket.on('ev-ack', (arg, cb) => cb(Buffer.from([7, 8]), 'ignored'));
});
B.io.on('ask', (x, cb) => cb({ got: x }));
A.io.of('/chat');
B.io.of('/chat');

const client = connect(`http://127.0.0.1:${B.port}`, { transports: ['websocket'] });
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('connect_error', reject);
});
client.on('ev-ack', (arg, cb) => cb(Buffer.from([7, 8]), 'ignored'));
// B reads the stream once a broadcast from A reaches the client.
await new Promise((resolve) => {
  client.once('warmup', resolve);
  const again = setInterval(() => A.io.emit('warmup'), 200);
  client.once('warmup', () => clearInterval(again));
});

let last = '0-0';
async function newEntries() {
  const entries = await reader.xRange('socket.io', last === '0-0' ? '-' : `(${last}`, '+');
  if (entries.length) last = entries[entries.length - 1].id;
  return entries;
}
await newEntries();
captured.length = 0;

function waitCount(n) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`expected ${n} messages, got ${captured.length}`)), WAIT_MS);
    const check = () => {
      if (captured.length >= n) {
        clearTimeout(t);
        resolve();
      } else {
        waiters.push(check);
      }
    };
    check();
  });
}

const entries = [];
const messages = [];
async function step(name, { entries: nEntries = 0, messages: nMessages = 0 }, action) {
  const result = action();
  await waitCount(nMessages);
  await result;
  let got = [];
  const end = Date.now() + WAIT_MS;
  while (got.length < nEntries && Date.now() < end) {
    got = got.concat(await newEntries());
    if (got.length < nEntries) await new Promise((r) => setTimeout(r, 20));
  }
  if (got.length !== nEntries) throw new Error(`${name}: ${got.length} entries, expected ${nEntries}`);
  if (captured.length !== nMessages) throw new Error(`${name}: ${captured.length} messages, expected ${nMessages}`);
  for (const e of got) entries.push({ step: name, id: e.id, fields: e.message });
  for (const m of captured.splice(0)) {
    messages.push({ step: name, channel: m.channel, hex: m.payload.toString('hex') });
  }
}

await step('emit-all', { entries: 1 }, () => A.io.emit('ev', 1, 'two', { a: [true, null] }, 1.5, -3, 300, 70000, 5000000000));
await step('emit-room-binary', { entries: 1 }, () => A.io.to('room1').emit('bin', Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }));
await step('emit-rooms-except-volatile', { entries: 1 }, () => A.io.to(['r1', 'r2']).except('r3').volatile.emit('v'));
await step('emit-nsp', { entries: 1 }, () => A.io.of('/chat').emit('chat', 'hi'));
await step('socket-emit', { entries: 1 }, () => {
  const [socket] = B.io.of('/').sockets.values();
  socket.emit('direct', 'x');
});
await step('sockets-join', { entries: 1 }, () => A.io.in('room1').socketsJoin(['room2']));
await step('sockets-leave', { entries: 1 }, () => A.io.except('room9').socketsLeave('room2'));
await step('disconnect-sockets', { entries: 1 }, () => A.io.in('nobody').disconnectSockets(true));
await step('server-side-emit', { messages: 1 }, () => A.io.serverSideEmit('hello', 'world', 1));
await step('server-side-emit-ack', { messages: 2 }, () => A.io.serverSideEmitWithAck('ask', 42));
await step('fetch-sockets', { messages: 2 }, () => A.io.fetchSockets());
await step('broadcast-with-ack', { messages: 3 }, () => A.io.timeout(2000).emitWithAck('ev-ack', 'q'));

// The session B saves when the client's connection drops.
const pid = client._pid;
const sid = client.id;
client.io.engine.close();
let session = null;
for (let i = 0; i < 250 && !session; i++) {
  session = await reader.get(`sio:session:${pid}`);
  if (!session) await new Promise((r) => setTimeout(r, 20));
}
if (!session) throw new Error('no session saved');
client.disconnect();

A.io.close();
B.io.close();
for (const c of clients) {
  try { await c.quit(); } catch { /* closed */ }
}
await redis.stop();

const pkg = (name) => JSON.parse(readFileSync(path.join(REPO_ROOT, 'tests', 'node_modules', ...name.split('/'), 'package.json'), 'utf8')).version;
const fixture = {
  note: 'Generated by tests/redis/capture-streams.mjs; do not edit.',
  versions: Object.fromEntries(['@socket.io/redis-streams-adapter', 'socket.io', '@msgpack/msgpack', 'redis'].map((n) => [n, pkg(n)])),
  entries,
  messages,
  session: { sid, pid, text: session },
};
writeFileSync(OUT, JSON.stringify(fixture, null, 2) + '\n');
console.log(`${entries.length} entries and ${messages.length} messages written to ${OUT}`);
process.exit(0);
