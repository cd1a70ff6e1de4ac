// Emitters into a mixed cluster (our node A: sio-echo --redis; Node.js node B:
// redis/node-server.mjs), official socket.io-client clients on both: our Rust emitter
// (socketio-redis/examples/redis-emit.rs) and @socket.io/redis-emitter 5.1, with every operation:
// emit with to/except/volatile, of(nsp), socketsJoin, socketsLeave, serverSideEmit and
// disconnectSockets.
//
// `cargo build -p socketio --example sio-echo -p socketio-redis --example redis-emit` first.
//
// Barriers, never sleeps: an emitter call resolves once Redis has taken the message (the Rust
// emitter awaits PUBLISH; for the Node one we await a PING on the same connection), so Redis has
// already pushed it to both nodes. A later `count` (fetchSockets) from a node is answered by the
// other node only after it handled that message, and it reaches the asking node after it too.
// "Did not receive" is checked by a marker broadcast to everyone published afterwards: it must be
// the next one.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { io } from 'socket.io-client';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';
import { startServer, exampleBinary, REPO_ROOT } from '../helpers/server.mjs';
import { startRedis } from '../helpers/redis.mjs';
import { once, toBuffer } from '../helpers/eio.mjs';

const WAIT_MS = 10000;

async function connectClient(server, nsp = '/') {
  const socket = io(`http://127.0.0.1:${server.port}${nsp}`, {
    path: server.path,
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
  });
  await once(socket, 'connect', WAIT_MS, { failOn: 'connect_error' });
  return socket;
}

const ask = (socket, event, ...args) => socket.timeout(WAIT_MS).emitWithAck(event, ...args);
const next = (socket, event) => once(socket, event, WAIT_MS);
const fromWire = (a) => (a && typeof a === 'object' && Array.isArray(a.$binary) ? Buffer.from(a.$binary) : a);

/** Our emitter: the redis-emit example, one JSON command per line, `ok` per line. */
async function rustEmitter(url) {
  const proc = spawn(exampleBinary('redis-emit'), ['--redis', url], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: proc.stdout });
  const pending = [];
  let ready;
  const isReady = new Promise((resolve, reject) => {
    ready = resolve;
    proc.once('exit', (code) => reject(new Error(`redis-emit exited (${code})`)));
  });
  lines.on('line', (line) => {
    if (line === 'ready') return ready();
    pending.shift()?.(line);
  });
  await isReady;
  return {
    run(cmd) {
      return new Promise((resolve, reject) => {
        pending.push((line) => (line === 'ok' ? resolve() : reject(new Error(line))));
        proc.stdin.write(`${JSON.stringify(cmd)}\n`);
      });
    },
    async close() {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.stdin.end();
      await exited;
    },
  };
}

/** @socket.io/redis-emitter with the same commands. */
async function nodeEmitter(url) {
  const pub = createClient({ url });
  pub.on('error', () => {});
  await pub.connect();
  const emitter = new Emitter(pub);
  return {
    async run(cmd) {
      const ns = emitter.of(cmd.nsp ?? '/');
      let op = ns.to(cmd.to ?? []).except(cmd.except ?? []);
      if (cmd.volatile) op = op.volatile;
      const args = (cmd.args ?? []).map(fromWire);
      switch (cmd.op) {
        case 'emit': op.emit(cmd.event, ...args); break;
        case 'socketsJoin': op.socketsJoin(cmd.rooms); break;
        case 'socketsLeave': op.socketsLeave(cmd.rooms); break;
        case 'disconnectSockets': op.disconnectSockets(cmd.close ?? false); break;
        case 'serverSideEmit': ns.serverSideEmit(cmd.event, ...args); break;
        default: throw new Error(`unknown op ${cmd.op}`);
      }
      await pub.ping(); // after the PUBLISH, on the same connection
    },
    close: () => pub.quit(),
  };
}

for (const kind of ['rust', 'node']) {
  describe(`${kind} emitter into a cluster of our node and a Node node`, () => {
    let redis;
    let A;
    let B;
    let emitter;
    let ca;
    let cb;
    let ca2;
    let cb2;

    before(async () => {
      redis = await startRedis();
      A = await startServer('sio-echo', ['--redis', redis.url]);
      B = await startServer('node-server', ['--redis', redis.url], {
        command: [process.execPath, 'redis/node-server.mjs'],
      });
      [ca, cb, ca2, cb2] = await Promise.all([
        connectClient(A), connectClient(B), connectClient(A, '/custom'), connectClient(B, '/custom'),
      ]);
      emitter = kind === 'rust' ? await rustEmitter(redis.url) : await nodeEmitter(redis.url);
    });

    after(async () => {
      for (const c of [ca, cb, ca2, cb2]) c?.disconnect();
      await emitter?.close();
      await Promise.all([A?.stop(), B?.stop()]);
      await redis?.stop();
    });

    /** Both '/' clients' next `broadcast` is the marker: nothing else came before it. */
    async function nothingElse(clients) {
      const got = clients.map((c) => next(c, 'broadcast'));
      await emitter.run({ op: 'emit', event: 'broadcast', args: ['marker'] });
      for (const args of await Promise.all(got)) assert.deepEqual(args, ['marker']);
    }

    test('emit reaches every client of both nodes, binary included', async () => {
      const got = [next(ca, 'broadcast'), next(cb, 'broadcast')];
      await emitter.run({ op: 'emit', event: 'broadcast', args: ['all', { n: 1 }, { $binary: [1, 2] }] });
      for (const args of await Promise.all(got)) {
        assert.equal(args[0], 'all');
        assert.deepEqual(args[1], { n: 1 });
        assert.deepEqual([...toBuffer(args[2])], [1, 2]);
      }
    });

    test('socketsJoin with except, then to(room) reaches only its members', async () => {
      await emitter.run({ op: 'socketsJoin', except: [cb.id], rooms: ['gold'] });
      assert.equal(await ask(cb, 'count'), 2); // barrier
      assert.ok((await ask(ca, 'rooms')).includes('gold'));
      assert.ok(!(await ask(cb, 'rooms')).includes('gold'));
      const got = next(ca, 'broadcast');
      await emitter.run({ op: 'emit', to: ['gold'], event: 'broadcast', args: ['to-gold'] });
      assert.deepEqual(await got, ['to-gold']);
      await nothingElse([cb]);
    });

    test('except and volatile leave out the room', async () => {
      const got = next(cb, 'broadcast');
      await emitter.run({ op: 'emit', except: ['gold'], volatile: true, event: 'broadcast', args: ['not-gold'] });
      assert.deepEqual(await got, ['not-gold']);
      await nothingElse([ca]);
    });

    test('socketsJoin to a room on the Node node, then socketsLeave everywhere', async () => {
      await emitter.run({ op: 'socketsJoin', to: [cb.id], rooms: ['silver'] });
      assert.equal(await ask(ca, 'count'), 2); // barrier
      assert.ok((await ask(cb, 'rooms')).includes('silver'));
      assert.ok(!(await ask(ca, 'rooms')).includes('silver'));
      await emitter.run({ op: 'socketsLeave', rooms: ['gold', 'silver'] });
      assert.equal(await ask(ca, 'count'), 2); // barrier
      for (const c of [ca, cb]) {
        const rooms = await ask(c, 'rooms');
        assert.ok(!rooms.includes('gold') && !rooms.includes('silver'), JSON.stringify(rooms));
      }
    });

    test('of(nsp) reaches that namespace only', async () => {
      const got = [next(ca2, 'broadcast'), next(cb2, 'broadcast')];
      await emitter.run({ op: 'emit', nsp: '/custom', event: 'broadcast', args: ['custom'] });
      for (const args of await Promise.all(got)) assert.deepEqual(args, ['custom']);
      await nothingElse([ca, cb]);
    });

    test('serverSideEmit reaches the server-side listeners of both nodes', async () => {
      const got = [next(ca, 'notified'), next(cb, 'notified')];
      await emitter.run({ op: 'serverSideEmit', event: 'notify', args: ['x', 1] });
      for (const args of await Promise.all(got)) assert.deepEqual(args, ['x', 1]);
    });

    test('disconnectSockets disconnects the selected sockets of both nodes', async () => {
      const got = [next(ca2, 'disconnect'), next(cb2, 'disconnect')];
      await emitter.run({ op: 'disconnectSockets', nsp: '/custom', close: false });
      for (const [reason] of await Promise.all(got)) assert.equal(reason, 'io server disconnect');
      // The '/' sockets stay.
      assert.ok(ca.connected && cb.connected);
      assert.equal(await ask(ca, 'count'), 2);
    });
  });
}
