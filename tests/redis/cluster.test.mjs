// Cluster tests through a private redis-server: two of our nodes (sio-echo --redis), and a mixed
// cluster of our node and a Node.js socket.io 4.8 node on @socket.io/redis-adapter 8.3
// (redis/node-server.mjs), with an official socket.io-client on each node. Both nodes understand
// the same cluster events (table at the top of socketio/examples/sio-echo.rs).
//
// `cargo build -p socketio --example sio-echo` first.
//
// Operations that go through Redis (sockets_join) are only applied when the request comes back;
// a later fetchSockets from the same node is published after it and answered by every node only
// after applying it, so `count` serves as the barrier, never a sleep.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';
import { startServer } from '../helpers/server.mjs';
import { startRedis } from '../helpers/redis.mjs';
import { once, toBuffer } from '../helpers/eio.mjs';

const WAIT_MS = 10000;

function startNode(kind, redisUrl, extra = [], { sharded = false } = {}) {
  if (kind === 'rust') {
    return startServer('sio-echo', [sharded ? '--redis-sharded' : '--redis', redisUrl, ...extra]);
  }
  const args = ['--redis', redisUrl, ...extra, ...(sharded ? ['--sharded'] : [])];
  return startServer('node-server', args, { command: [process.execPath, 'redis/node-server.mjs'] });
}

async function connectClient(server) {
  const socket = io(`http://127.0.0.1:${server.port}`, {
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
const byJson = (a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

async function redisClient(url) {
  const c = createClient({ url });
  c.on('error', () => {});
  await c.connect();
  return c;
}

function clusterSuite(kindA, kindB, { argsB = [], sharded = false } = {}) {
  const label = `${sharded ? 'sharded ' : ''}cluster: ${kindA} node + ${kindB} node ${argsB.join(' ')}`;
  describe(label, () => {
    let redis;
    let A;
    let B;
    const clients = [];
    let ca;
    let cb;

    before(async () => {
      redis = await startRedis();
      A = await startNode(kindA, redis.url, [], { sharded });
      B = await startNode(kindB, redis.url, argsB, { sharded });
      ca = await connectClient(A);
      cb = await connectClient(B);
      clients.push(ca, cb);
    });

    after(async () => {
      for (const c of clients) c.disconnect();
      await Promise.all([A?.stop(), B?.stop()]);
      await redis?.stop();
    });

    test('each node counts two servers', async () => {
      assert.equal(await ask(ca, 'server-count'), 2);
      assert.equal(await ask(cb, 'server-count'), 2);
    });

    test('broadcasts reach both nodes, binary included, in both directions', async () => {
      for (const [from, tag] of [[ca, 'from-a'], [cb, 'from-b']]) {
        const got = [next(ca, 'broadcast'), next(cb, 'broadcast')];
        from.emit('broadcast', tag, { n: 1, list: [true, null] }, Buffer.from([1, 2, 3]));
        for (const args of await Promise.all(got)) {
          assert.equal(args.length, 3);
          assert.equal(args[0], tag);
          assert.deepEqual(args[1], { n: 1, list: [true, null] });
          assert.deepEqual([...toBuffer(args[2])], [1, 2, 3]);
        }
      }
    });

    test('fetchSockets finds the sockets of both nodes', async () => {
      assert.equal(await ask(ca, 'count'), 2);
      assert.equal(await ask(cb, 'count'), 2);
    });

    test('socketsJoin applies on both nodes; a room broadcast then reaches both', async () => {
      for (const [from, other, room] of [[ca, cb, 'blue'], [cb, ca, 'green']]) {
        await ask(from, 'join-all', room);
        assert.equal(await ask(from, 'count'), 2); // barrier: see the header
        assert.ok((await ask(ca, 'rooms')).includes(room), `${room} on A`);
        assert.ok((await ask(cb, 'rooms')).includes(room), `${room} on B`);
        const got = [next(ca, 'broadcast'), next(cb, 'broadcast')];
        other.emit('to-room', room, `to-${room}`);
        for (const args of await Promise.all(got)) assert.deepEqual(args, [`to-${room}`]);
      }
    });

    // The sharded adapter has no allRooms.
    test('allRooms lists the rooms of both nodes', { skip: sharded }, async () => {
      for (const c of [ca, cb]) {
        const rooms = await ask(c, 'all-rooms');
        assert.ok(rooms.includes(ca.id) && rooms.includes(cb.id), JSON.stringify(rooms));
      }
    });

    test('serverSideEmit reaches the other node and returns its answer', async () => {
      assert.deepEqual(await ask(ca, 'server-side-emit', 'x', 1), [{ node: kindB, got: ['x', 1] }]);
      assert.deepEqual(await ask(cb, 'server-side-emit', { y: 2 }), [{ node: kindA, got: [{ y: 2 }] }]);
    });

    test('a broadcast with acks collects the answers of both nodes', async () => {
      ca.on('question', (q, ack) => ack({ from: 'a', q }));
      cb.on('question', (q, ack) => ack({ from: 'b', q }));
      for (const [from, q] of [[ca, 'q1'], [cb, 'q2']]) {
        const reply = await ask(from, 'broadcast-with-ack', q);
        assert.equal(reply.missing, 0, JSON.stringify(reply));
        assert.deepEqual(reply.responses.sort(byJson), [{ from: 'a', q }, { from: 'b', q }]);
      }
      ca.off('question');
      cb.off('question');
    });

    // The emitter publishes on the classic channels only.
    test('@socket.io/redis-emitter reaches both nodes', { skip: sharded }, async () => {
      const pub = await redisClient(redis.url);
      try {
        const emitter = new Emitter(pub);
        const got = [next(ca, 'broadcast'), next(cb, 'broadcast')];
        emitter.emit('broadcast', 'from-emitter', Buffer.from([9]));
        for (const args of await Promise.all(got)) {
          assert.equal(args[0], 'from-emitter');
          assert.deepEqual([...toBuffer(args[1])], [9]);
        }
      } finally {
        await pub.quit();
      }
    });
  });
}

clusterSuite('rust', 'rust');
clusterSuite('rust', 'node');
// The Node node replies on our node's own response channel.
clusterSuite('rust', 'node', { argsB: ['--specific-response-channel'] });
clusterSuite('rust', 'rust', { sharded: true });
clusterSuite('rust', 'node', { sharded: true });

describe('cluster: requests to a node that never answers', () => {
  let redis;
  let A;
  let silent;
  let client;

  before(async () => {
    redis = await startRedis();
    // Subscribed to the request channel (so it is counted) but never answering.
    silent = await redisClient(redis.url);
    await silent.subscribe('socket.io-request#/#', () => {});
    A = await startNode('rust', redis.url, ['--redis-requests-timeout', '300']);
    client = await connectClient(A);
  });

  after(async () => {
    client?.disconnect();
    await A?.stop();
    await silent?.quit();
    await redis?.stop();
  });

  test('fetchSockets, allRooms and serverSideEmit end with a timeout error', async () => {
    assert.equal(await ask(client, 'server-count'), 2);
    assert.match((await ask(client, 'count')).error, /timeout reached while waiting for fetchSockets/);
    assert.match((await ask(client, 'all-rooms')).error, /timeout reached while waiting for allRooms/);
    assert.match((await ask(client, 'server-side-emit', 1)).error, /timeout reached: only 0 responses received out of 1/);
  });

  test('a broadcast with acks reports the silent node as missing', async () => {
    client.on('question', (q, ack) => ack(q));
    const reply = await ask(client, 'broadcast-with-ack', 'q');
    assert.deepEqual(reply, { responses: ['q'], missing: 1 });
  });
});
