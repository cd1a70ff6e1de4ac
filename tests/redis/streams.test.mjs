// The Redis Streams adapter through a private redis-server: two of our nodes
// (sio-echo --redis-streams), a mixed cluster of our node and a Node.js socket.io 4.8 node on
// @socket.io/redis-streams-adapter 0.3 (redis/node-streams-server.mjs), and connection state
// recovery across nodes: a client whose node dies (or whose connection drops) reconnects through
// a TCP proxy to another node and gets its session back with every event it missed.
//
// `cargo build -p socketio --example sio-echo` first.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { io } from 'socket.io-client';
import { createClient } from 'redis';
import { startServer } from '../helpers/server.mjs';
import { startRedis } from '../helpers/redis.mjs';
import { once, toBuffer } from '../helpers/eio.mjs';

const WAIT_MS = 10000;

function startNode(kind, redisUrl, extra = []) {
  return kind === 'rust'
    ? startServer('sio-echo', ['--redis-streams', redisUrl, ...extra])
    : startServer('node-streams-server', ['--redis', redisUrl, ...extra.filter((a) => a === '--recovery')],
      { command: [process.execPath, 'redis/node-streams-server.mjs'] });
}

async function connectClient(port, opts = {}) {
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    ...opts,
  });
  await once(socket, 'connect', WAIT_MS, { failOn: 'connect_error' });
  return socket;
}

const ask = (socket, event, ...args) => socket.timeout(WAIT_MS).emitWithAck(event, ...args);
const next = (socket, event) => once(socket, event, WAIT_MS);

async function redisClient(url) {
  const c = createClient({ url });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Polls `check` until it holds (state in another process, no event to await). */
async function until(what, check, ms = WAIT_MS) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A TCP proxy, the load balancer: forwards new connections to the current target port. */
async function startProxy(target) {
  const conns = new Set();
  const pairs = new Set();
  const proxy = {
    target,
    paused: false,
    port: 0,
    dropAll() {
      for (const c of conns) c.destroy();
      conns.clear();
    },
    /**
     * Drops the client side of every connection, keeping the server side open (the server does
     * not notice); resolves with a promise of those server sides closing.
     */
    dropClientSides() {
      const closed = [];
      for (const { down, up } of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.removeAllListeners('close');
        down.removeAllListeners('error');
        down.on('error', () => {});
        up.removeAllListeners('close');
        up.removeAllListeners('error');
        up.on('error', () => {});
        up.on('data', () => {});
        up.resume();
        closed.push(new Promise((r) => (up.destroyed ? r() : up.once('close', r))));
        down.destroy();
      }
      pairs.clear();
      return Promise.all(closed);
    },
  };
  const server = net.createServer((down) => {
    if (proxy.paused) {
      down.destroy();
      return;
    }
    const up = net.connect(proxy.target, '127.0.0.1');
    conns.add(down);
    conns.add(up);
    const pair = { down, up };
    pairs.add(pair);
    const end = () => {
      down.destroy();
      up.destroy();
      conns.delete(down);
      conns.delete(up);
      pairs.delete(pair);
    };
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.port = server.address().port;
  proxy.close = () => new Promise((r) => {
    proxy.dropAll();
    server.close(r);
  });
  return proxy;
}

function clusterSuite(kindA, kindB) {
  describe(`streams cluster: ${kindA} node + ${kindB} node`, () => {
    let redis;
    let A;
    let B;
    let ca;
    let cb;

    before(async () => {
      redis = await startRedis();
      A = await startNode(kindA, redis.url);
      B = await startNode(kindB, redis.url);
      ca = await connectClient(A.port);
      cb = await connectClient(B.port);
    });

    after(async () => {
      ca?.disconnect();
      cb?.disconnect();
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
        // Applied locally at once, and on the other node when it reads the stream entry,
        // which comes before the entry of any later broadcast.
        const got = [next(ca, 'broadcast'), next(cb, 'broadcast')];
        from.emit('to-room', room, `to-${room}`);
        for (const args of await Promise.all(got)) assert.deepEqual(args, [`to-${room}`]);
        assert.ok((await ask(ca, 'rooms')).includes(room), `${room} on A`);
        assert.ok((await ask(cb, 'rooms')).includes(room), `${room} on B`);
        const got2 = [next(ca, 'broadcast'), next(cb, 'broadcast')];
        other.emit('to-room', room, `to-${room}-2`);
        for (const args of await Promise.all(got2)) assert.deepEqual(args, [`to-${room}-2`]);
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
        assert.deepEqual(reply.responses, [{ from: 'a', q }, { from: 'b', q }]);
      }
      ca.off('question');
      cb.off('question');
    });

    test('a node that dies leaves the server count', async () => {
      await B.stop('SIGKILL');
      await until('server count 1', async () => (await ask(ca, 'server-count')) === 1);
      assert.equal(await ask(ca, 'count'), 1);
    });
  });
}

clusterSuite('rust', 'rust');
clusterSuite('rust', 'node');

describe('streams cluster: requests and garbage', () => {
  let redis;
  let A;
  let silent;
  let client;
  let raw;

  before(async () => {
    redis = await startRedis();
    // Subscribed to the public channel (so it is counted) but never answering.
    silent = await redisClient(redis.url);
    await silent.subscribe('socket.io#/#', () => {});
    raw = await redisClient(redis.url);
    A = await startNode('rust', redis.url, ['--redis-requests-timeout', '300']);
    client = await connectClient(A.port);
  });

  after(async () => {
    client?.disconnect();
    await A?.stop();
    await silent?.quit();
    await raw?.quit();
    await redis?.stop();
  });

  test('fetchSockets and serverSideEmit to a silent node end with a timeout error', async () => {
    assert.equal(await ask(client, 'server-count'), 2);
    assert.match((await ask(client, 'count')).error, /timeout reached: only 0 responses received out of 1/);
    assert.match((await ask(client, 'server-side-emit', 1)).error, /timeout reached: only 0 responses received out of 1/);
  });

  test('malformed and foreign stream entries and messages are ignored', async () => {
    const entries = [
      { uid: 'x' },
      { uid: 'x', nsp: '/', type: 'nope' },
      { uid: 'x', nsp: '/', type: '3', data: '{not json' },
      { uid: 'x', nsp: '/', type: '3', data: '!!!' },
      { uid: 'x', nsp: '/', type: '3', data: '{"packet":{"type":2,"data":[1]},"opts":{}}' },
      { uid: 'x', nsp: '/', type: '3', data: '{"packet":{"type":2,"data":["e"]},"opts":{"rooms":"r"}}' },
      { uid: 'x', nsp: '/', type: '99', data: '{}' },
      { uid: 'x', nsp: '/elsewhere', type: '3', data: '{"packet":{"type":2,"data":["broadcast","foreign"]},"opts":{"rooms":[],"except":[]}}' },
    ];
    for (const e of entries) await raw.xAdd('socket.io', '*', e);
    for (const payload of [Buffer.from([0xc1]), Buffer.from('{'), Buffer.from([0x93, 1, 2, 3])]) {
      await raw.publish('socket.io#/#', payload);
    }
    // A well-formed entry from a foreign node after the garbage is still delivered, first.
    const got = next(client, 'broadcast');
    await raw.xAdd('socket.io', '*', {
      uid: 'another-node', nsp: '/', type: '3',
      data: JSON.stringify({ packet: { type: 2, data: ['broadcast', 'after-garbage'] }, opts: { rooms: [], except: [], flags: {} } }),
    });
    assert.deepEqual(await got, ['after-garbage']);
    assert.equal(A.proc.exitCode, null);
  });
});

/**
 * The key scenario: a client (with connection state recovery) on node A behind a proxy; A dies
 * (`kill` = 'SIGKILL') or the client's connection drops (`kill` = 'drop'); events are emitted
 * from B meanwhile; the proxy then sends the client to B, which restores it.
 */
function recoverySuite(kindA, kindB, kill) {
  describe(`streams recovery: client on ${kindA} node (${kill}), back on ${kindB} node`, () => {
    let redis;
    let A;
    let B;
    let proxy;
    let observer;
    let client;
    let raw;

    before(async () => {
      redis = await startRedis();
      raw = await redisClient(redis.url);
      A = await startNode(kindA, redis.url, ['--recovery']);
      B = await startNode(kindB, redis.url, ['--recovery']);
      proxy = await startProxy(A.port);
      observer = await connectClient(B.port);
    });

    after(async () => {
      client?.disconnect();
      observer?.disconnect();
      await proxy?.close();
      await Promise.all([A?.stop(), B?.stop()]);
      await raw?.quit();
      await redis?.stop();
    });

    test('recovered: same id, its rooms and every missed event', async () => {
      client = await connectClient(proxy.port, {
        reconnection: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 300,
        randomizationFactor: 0,
      });
      assert.equal(client.recovered, false);
      const id = client.id;
      const received = [];
      client.on('broadcast', (...args) => received.push(args));

      // Rooms: every socket (the observer on B too) joins `r1`.
      await ask(client, 'join-all', 'r1');
      // A first event gives the client an offset; on A the session was saved before it.
      const firstSeen = next(client, 'broadcast');
      client.emit('broadcast', 'first');
      await firstSeen;
      assert.ok((await ask(client, 'rooms')).includes('r1'));

      // Away: the proxy refuses connections until B takes over.
      proxy.paused = true;
      const gone = once(client, 'disconnect', WAIT_MS);
      if (kill === 'SIGKILL') {
        await A.stop('SIGKILL');
      } else {
        // The connection drops: A sees a transport close and saves the session.
        proxy.dropAll();
      }
      await gone;
      // A no longer counts the client (when alive, it saved the session before answering).
      await until('the client gone from the cluster', async () => (await ask(observer, 'count')) === 1);

      // Events while the client is away, from B; the observer sees them once they are out.
      const seen = [];
      const allSeen = new Promise((resolve) => {
        observer.on('broadcast', (...args) => {
          seen.push(args[0]);
          if (args[0] === 'missed-3') resolve();
        });
      });
      observer.emit('broadcast', 'missed-1', { n: 1 });
      observer.emit('to-room', 'r1', 'missed-2', Buffer.from([4, 5]));
      observer.emit('to-room', 'elsewhere', 'not-for-the-client');
      observer.emit('broadcast', 'missed-3');
      await allSeen;

      // The proxy now sends new connections to B.
      proxy.target = B.port;
      proxy.paused = false;
      await once(client, 'connect', WAIT_MS * 2);
      assert.equal(client.recovered, true, 'recovered');
      assert.equal(client.id, id);
      const rooms = await ask(client, 'rooms');
      assert.ok(rooms.includes('r1'), JSON.stringify(rooms));
      assert.ok(rooms.includes(id), JSON.stringify(rooms));

      // Each event ends with its offset, a stream entry id, increasing.
      const offsets = received.map((a) => a[a.length - 1]);
      for (const o of offsets) assert.match(o, /^\d+-\d+$/);
      const key = (o) => o.split('-').map(BigInt);
      for (let i = 1; i < offsets.length; i++) {
        const [[m0, s0], [m1, s1]] = [key(offsets[i - 1]), key(offsets[i])];
        assert.ok(m1 > m0 || (m1 === m0 && s1 > s0), `${offsets}`);
      }
      const events = received.map((a) => a.slice(0, -1));
      assert.deepEqual(events.map((a) => a[0]), ['first', 'missed-1', 'missed-2', 'missed-3']);
      assert.deepEqual(events[1], ['missed-1', { n: 1 }]);
      assert.deepEqual([...toBuffer(events[2][1])], [4, 5]);

      // Live again on B, through the cluster.
      const live = next(client, 'broadcast');
      observer.emit('broadcast', 'live');
      assert.equal((await live)[0], 'live');
    });
  });
}

recoverySuite('rust', 'rust', 'SIGKILL');
recoverySuite('rust', 'node', 'SIGKILL');
recoverySuite('node', 'rust', 'drop');
recoverySuite('rust', 'rust', 'drop');

describe('streams recovery: an immediate reconnect to the same node', () => {
  let redis;
  let A;
  let proxy;
  let client;

  before(async () => {
    redis = await startRedis();
    // Short pings: a connection the server has not seen drop times out quickly.
    A = await startNode('rust', redis.url, ['--recovery', '--ping-interval', '300', '--ping-timeout', '1500']);
    proxy = await startProxy(A.port);
  });

  after(async () => {
    client?.disconnect();
    await proxy?.close();
    await A?.stop();
    await redis?.stop();
  });

  // The session saved ahead of time is there while the old connection still looks alive: the
  // old socket must be closed before the restore, or its late departure would take the
  // recovered socket's id and rooms with it.
  test('takes over the old connection; the recovered socket keeps its rooms', { timeout: 30000 }, async () => {
    client = await connectClient(proxy.port, {
      reconnection: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
      randomizationFactor: 0,
    });
    const id = client.id;
    await ask(client, 'join-all', 'r1');
    const first = next(client, 'broadcast');
    client.emit('broadcast', 'first');
    await first;

    const gone = once(client, 'disconnect', WAIT_MS);
    const oldClosed = proxy.dropClientSides();
    await gone;
    await once(client, 'connect', WAIT_MS);
    assert.equal(client.recovered, true);
    assert.equal(client.id, id);
    // The old connection is gone by now, either way (taken over, or timed out).
    await oldClosed;
    assert.equal(await ask(client, 'count'), 1);
    assert.ok((await ask(client, 'rooms')).includes('r1'));
    const got = next(client, 'broadcast');
    client.emit('to-room', 'r1', 'to-r1');
    assert.equal((await got)[0], 'to-r1');
  });
});
