// Faults in a mixed cluster (our node A: sio-echo --redis; Node.js node B: redis/node-server.mjs)
// with official socket.io-client clients:
//
// - Redis is killed and restarted on the same port mid-test: local delivery keeps working on both
//   nodes during the outage (on our node only with the sharded adapter: Node's delivers locally
//   after its publish resolves), our node reports the outage (log line and `redis-stats`, i.e.
//   RedisAdapterFactory::stats()), both nodes reconnect and resubscribe, cross-node delivery
//   works again.
// - A node that dies (SIGKILL) leaves the server count: the classic adapter counts the
//   subscribers of the request channel (PUBSUB NUMSUB), the sharded one those of its channel
//   (SHARDNUMSUB), and a dead node's subscriptions go with its connection.
//
// Both with the classic and with the sharded adapter.
//
// `cargo build -p socketio --example sio-echo` first.
//
// Nothing announces "reconnected" across both nodes, so `until` polls a condition (stats, server
// count, a probe broadcast) with a deadline; no fixed sleeps.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startServer } from '../helpers/server.mjs';
import { startRedis } from '../helpers/redis.mjs';
import { once } from '../helpers/eio.mjs';

const WAIT_MS = 10000;
const LOG_ENV = { RUST_LOG: 'socketio_redis=warn' };

function startNode(kind, redisUrl, sharded) {
  return kind === 'rust'
    ? startServer('sio-echo', [sharded ? '--redis-sharded' : '--redis', redisUrl], { env: LOG_ENV })
    : startServer('node-server', ['--redis', redisUrl, ...(sharded ? ['--sharded'] : [])],
      { command: [process.execPath, 'redis/node-server.mjs'] });
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

/** The first `event` whose first argument is `tag` (others, e.g. late probes, are skipped). */
function waitFor(socket, event, tag, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const handler = (...args) => {
      if (args[0] !== tag) return;
      clearTimeout(timer);
      socket.off(event, handler);
      resolve(args);
    };
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no '${event}' ${tag} within ${ms} ms`));
    }, ms);
    socket.on(event, handler);
  });
}

/** Polls `check` until it returns true. */
async function until(check, what, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let probes = 0;
/** Whether a broadcast from `from` reaches `to` within a short time. */
async function probe(from, to) {
  const tag = `probe-${++probes}`;
  const got = waitFor(to, 'broadcast', tag, 500).then(() => true, () => false);
  from.emit('broadcast', tag);
  return got;
}

async function bothWays(ca, cb, label) {
  for (const [from, tagged] of [[ca, `${label}-a`], [cb, `${label}-b`]]) {
    const got = [waitFor(ca, 'broadcast', tagged), waitFor(cb, 'broadcast', tagged)];
    from.emit('broadcast', tagged);
    await Promise.all(got);
  }
}

for (const sharded of [false, true]) {
const variant = sharded ? 'sharded' : 'classic';
describe(`${variant}: Redis killed and restarted under our node and a Node node`, () => {
  let redis;
  let A;
  let B;
  let ca;
  let cb;

  before(async () => {
    redis = await startRedis();
    A = await startNode('rust', redis.url, sharded);
    B = await startNode('node', redis.url, sharded);
    ca = await connectClient(A);
    cb = await connectClient(B);
  });

  after(async () => {
    ca?.disconnect();
    cb?.disconnect();
    await Promise.all([A?.stop(), B?.stop()]);
    await redis?.stop();
  });

  test('local delivery during the outage, cross-node delivery again after it', async () => {
    await bothWays(ca, cb, 'before');
    // Counted from here: a keepalive that stalled past its timeout on a loaded machine would
    // already count as an outage.
    const s0 = await ask(ca, 'redis-stats');
    assert.equal(s0.connected, true);

    const port = redis.port;
    await redis.kill();
    await until(async () => !(await ask(ca, 'redis-stats')).connected, 'our node notices the outage');
    assert.match(A.stderr(), /redis connection lost/);
    assert.ok((await ask(ca, 'redis-stats')).outages > s0.outages);

    // Each node still reaches its own clients. Not Node's sharded adapter: it delivers locally
    // only once its publish resolves, i.e. after the outage.
    const local = sharded ? [[ca, 'during-a']] : [[ca, 'during-a'], [cb, 'during-b']];
    for (const [c, tag] of local) {
      const got = waitFor(c, 'broadcast', tag);
      c.emit('broadcast', tag);
      await got;
    }
    // Requests do not hang: a Redis that cannot be asked counts as one node.
    assert.equal(await ask(ca, 'server-count'), 1);

    redis = await startRedis({ port });
    await until(async () => {
      const s = await ask(ca, 'redis-stats');
      return s.connected && s.reconnects > s0.reconnects;
    }, 'our node reconnects');
    assert.match(A.stderr(), /redis connection restored/);

    // The Node node reconnects on its own schedule: probe until both directions work.
    await until(async () => (await probe(ca, cb)) && (await probe(cb, ca)), 'delivery both ways');
    await bothWays(ca, cb, 'after');
    assert.equal(await ask(ca, 'server-count'), 2);
    assert.equal(await ask(cb, 'server-count'), 2);
    assert.equal(await ask(ca, 'count'), 2);
    const stats = await ask(ca, 'redis-stats');
    assert.ok(stats.outages > s0.outages);
    assert.ok(stats.dropped_publishes >= s0.dropped_publishes);
  });
});

for (const victim of ['node', 'rust']) {
  describe(`${variant}: a ${victim} node killed leaves the server count`, () => {
    let redis;
    let A;
    let B;
    let ca;
    let cb;

    before(async () => {
      redis = await startRedis();
      A = await startNode('rust', redis.url, sharded);
      B = await startNode('node', redis.url, sharded);
      ca = await connectClient(A);
      cb = await connectClient(B);
    });

    after(async () => {
      ca?.disconnect();
      cb?.disconnect();
      await Promise.all([A?.stop(), B?.stop()]);
      await redis?.stop();
    });

    test('the survivor counts one server and answers fetchSockets alone', async () => {
      assert.equal(await ask(ca, 'server-count'), 2);
      const [dead, survivor] = victim === 'node' ? [B, ca] : [A, cb];
      await dead.stop('SIGKILL');
      await until(async () => (await ask(survivor, 'server-count')) === 1, 'server count 1');
      // Not waiting for the dead node: no timeout.
      const started = Date.now();
      assert.equal(await ask(survivor, 'count'), 1);
      assert.ok(Date.now() - started < 4000, `fetchSockets took ${Date.now() - started} ms`);
    });
  });
}
}
