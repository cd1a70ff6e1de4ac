// Captures what Node's @socket.io/redis-adapter 8.3 (createAdapter and createShardedAdapter) and
// @socket.io/redis-emitter 5.1 publish, as fixtures for the Rust codec tests
// (socketio-redis/tests/fixtures/node.json).
//
//   cd tests && node redis/capture.mjs [output.json]
//
// Starts its own redis-server, two socket.io 4.8 servers A and B on the redis adapter, one
// socket.io-client on B, and a client subscribed to every channel that records each published
// message (channel + payload bytes as hex) under the name of the step that caused it. Then the
// same with two sharded servers C and D (steps `sharded-*`), recorded as they call SPUBLISH
// (a subscriber to their channel would count as a server).
import http from 'node:http';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Server } from 'socket.io';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';
import { io as connect } from 'socket.io-client';
import { startRedis } from '../helpers/redis.mjs';
import { REPO_ROOT } from '../helpers/server.mjs';

const OUT = process.argv[2] ?? path.join(REPO_ROOT, 'socketio-redis', 'tests', 'fixtures', 'node.json');
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
await monitor.pSubscribe('*', (message, channel) => {
  captured.push({ channel: channel.toString(), payload: Buffer.from(message) });
  for (const w of waiters.splice(0)) w();
}, true);

function record(channel, payload) {
  captured.push({ channel: channel.toString(), payload: Buffer.from(payload) });
  for (const w of waiters.splice(0)) w();
}

async function server(create = createAdapter) {
  const pub = await redisClient();
  const sPublish = pub.sPublish.bind(pub);
  pub.sPublish = (channel, payload) => {
    record(channel, payload);
    return sPublish(channel, payload);
  };
  const sub = pub.duplicate();
  sub.on('error', () => {});
  await sub.connect();
  clients.push(sub);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: create(pub, sub) });
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

const client = connect(`http://127.0.0.1:${B.port}`, { transports: ['websocket'], auth: { token: 't' } });
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('connect_error', reject);
});
client.on('ev-ack', (arg, cb) => cb(Buffer.from([7, 8]), 'ignored'));
// B's subscription is done once a broadcast from A reaches the client.
await new Promise((resolve) => {
  client.once('warmup', resolve);
  A.io.emit('warmup');
});
await waitCount(1);
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

const messages = [];
async function step(name, expected, action) {
  const result = action();
  await waitCount(expected);
  await result;
  if (captured.length !== expected) throw new Error(`${name}: ${captured.length} messages, expected ${expected}`);
  for (const m of captured.splice(0)) {
    messages.push({ step: name, channel: m.channel, hex: m.payload.toString('hex') });
  }
}

await step('emit-all', 1, () => A.io.emit('ev', 1, 'two', { a: [true, null] }, 1.5, -3, 300, 70000, 5000000000));
await step('emit-room-binary', 1, () => A.io.to('room1').emit('bin', Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }));
await step('emit-rooms-except-volatile', 1, () => A.io.to(['r1', 'r2']).except('r3').volatile.emit('v'));
await step('emit-compress', 1, () => A.io.compress(false).emit('c', 'x'));
await step('emit-local', 0, () => A.io.local.emit('l'));
await step('emit-nsp', 1, () => A.io.of('/chat').emit('chat', 'hi'));
await step('emit-date-undefined', 1, () => A.io.emit('dates', new Date(Date.UTC(2021, 0, 1, 0, 0, 0, 5)), { u: undefined, n: null }, undefined));
await step('emit-long-string', 1, () => A.io.emit('long', 'x'.repeat(40), 'y'.repeat(300), 'é'));
await step('sockets-join', 1, () => A.io.in('room1').socketsJoin(['room2']));
await step('sockets-leave', 1, () => A.io.except('room9').socketsLeave('room2'));
await step('disconnect-sockets', 1, () => A.io.in('nobody').disconnectSockets(true));
await step('server-side-emit', 1, () => A.io.serverSideEmit('hello', 'world', 1));
await step('server-side-emit-ack', 2, () => A.io.serverSideEmitWithAck('ask', 42));
await step('fetch-sockets', 2, () => A.io.fetchSockets());
await step('all-rooms', 2, () => A.io.of('/').adapter.allRooms());
await step('broadcast-with-ack', 3, () => A.io.timeout(2000).emitWithAck('ev-ack', 'q'));

const emitter = new Emitter(await redisClient());
await step('emitter-emit', 1, () => emitter.to('room1').emit('from-emitter', 1, Buffer.from([9])));
await step('emitter-emit-nsp-except', 1, () => emitter.of('/chat').except('x').volatile.emit('e'));
await step('emitter-sockets-join', 1, () => emitter.in('room1').socketsJoin('room9'));
await step('emitter-sockets-leave', 1, () => emitter.socketsLeave(['room9']));
await step('emitter-disconnect', 1, () => emitter.in('none').disconnectSockets(true));
await step('emitter-server-side-emit', 1, () => emitter.serverSideEmit('hey', 2));
await step('emitter-emit-all', 1, () => emitter.emit('plain', { a: 1 }, [2, 'x'], 1.5));
await step('emitter-emit-rooms-compress', 1, () => emitter.to(['r1', 'r2']).in('r3').compress(false).emit('c'));
await step('emitter-sockets-join-except', 1, () => emitter.of('/chat').in(['a', 'b']).except('c').socketsJoin(['d', 'e']));
await step('emitter-disconnect-false', 1, () => emitter.disconnectSockets());

// Sharded: C and D, a client on D in room1.
client.disconnect();
const C = await server(createShardedAdapter);
const D = await server(createShardedAdapter);
D.io.on('connection', (socket) => {
  socket.join('room1');
  socket.data = { user: 'dan' };
});
D.io.on('ask', (x, cb) => cb({ got: x }));
const client2 = connect(`http://127.0.0.1:${D.port}`, { transports: ['websocket'] });
await new Promise((resolve, reject) => {
  client2.once('connect', resolve);
  client2.once('connect_error', reject);
});
client2.on('ev-ack', (arg, cb) => cb(Buffer.from([7, 8])));
// D subscribes to room1's channel asynchronously: emit until the client gets one.
await new Promise((resolve) => {
  const timer = setInterval(() => C.io.to('room1').emit('warmup'), 50);
  client2.once('warmup', () => {
    clearInterval(timer);
    resolve();
  });
});
await new Promise((r) => setTimeout(r, 200)); // let the extra warmups arrive, then drop them
captured.length = 0;

await step('sharded-emit-all', 1, () => C.io.emit('ev', 1, 'two', { a: [true, null] }, 1.5, -3, 5000000000));
await step('sharded-emit-room', 1, () => C.io.to('room1').emit('r', 'x'));
await step('sharded-emit-binary', 1, () => C.io.emit('bin', Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }));
await step('sharded-emit-rooms-except-volatile', 1, () => C.io.to(['r1', 'r2']).except('r3').volatile.emit('v'));
await step('sharded-emit-socket-id', 1, () => C.io.to('abcdefghijklmnopqrst').emit('s'));
await step('sharded-sockets-join', 1, () => C.io.in('room1').socketsJoin(['room2']));
await step('sharded-sockets-leave', 1, () => C.io.except('room9').socketsLeave('room2'));
await step('sharded-disconnect-sockets', 1, () => C.io.in('nobody').disconnectSockets(true));
await step('sharded-server-side-emit', 1, () => C.io.serverSideEmit('hello', 'world', 1));
await step('sharded-server-side-emit-ack', 2, () => C.io.serverSideEmitWithAck('ask', 42));
await step('sharded-fetch-sockets', 2, () => C.io.fetchSockets());
await step('sharded-broadcast-with-ack', 3, () => C.io.timeout(2000).emitWithAck('ev-ack', 'q'));

client2.disconnect();
C.io.close();
D.io.close();

client.disconnect();
A.io.close();
B.io.close();
for (const c of clients) {
  try { await c.quit(); } catch { /* closed */ }
}
await redis.stop();

const pkg = (name) => JSON.parse(readFileSync(path.join(REPO_ROOT, 'tests', 'node_modules', ...name.split('/'), 'package.json'), 'utf8')).version;
const fixture = {
  note: 'Generated by tests/redis/capture.mjs; do not edit.',
  versions: Object.fromEntries(['@socket.io/redis-adapter', '@socket.io/redis-emitter', 'socket.io', 'notepack.io', 'redis'].map((n) => [n, pkg(n)])),
  messages,
};
writeFileSync(OUT, JSON.stringify(fixture, null, 2) + '\n');
console.log(`${messages.length} messages written to ${OUT}`);
