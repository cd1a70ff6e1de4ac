// Three chatd nodes behind real nginx running docs/deploy/nginx-cluster.conf: a session's
// requests reach the node named by its sid prefix; new sessions spread over the nodes; a dead
// node is skipped for new sessions, and its clients reconnect to the others.
//
// Routing needs no shared state, so the nodes run on their own SQLite and without Redis (the
// chat across nodes is tests/cluster/chat.test.mjs). `cargo build -p chatd` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chat, nextEvent, TRANSPORTS, WAIT_MS, withTimeout } from '../helpers/chatd.mjs';
import { Cluster, startCluster } from '../helpers/cluster.mjs';

const T = { timeout: 60000 };
const NODES = ['a', 'b', 'c'];

const engineId = (client) => client.socket.io.engine.id;

/** Re-checks `fn` (a log file nginx appends to) until it holds; fails after `ms`. */
async function eventually(fn, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    let err;
    try { if (await fn()) return; } catch (e) { err = e; }
    if (Date.now() > deadline) throw err ?? new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25)); // retry interval of a log probe
  }
}

/** The requests nginx logged for sessions, checked against their sid's node. */
function misrouted(cluster) {
  return cluster.requests().filter((r) => r.sid && (cluster.nodeByAddress(r.upstream) !== Cluster.nodeOf(r.sid) || r.status >= 400));
}

async function gauges(cluster) {
  const out = {};
  for (const id of NODES) {
    const m = await cluster.nodes[id].metrics();
    const value = (name) => [...m].find(([k]) => k.startsWith(name))?.[1];
    out[id] = { polling: value('chatd_connections{transport="polling"}'), websocket: value('chatd_connections{transport="websocket"}') };
  }
  return out;
}

test('polling sessions stay on the node of their sid prefix', T, async (t) => {
  const cluster = await startCluster({ t, store: 'sqlite', redis: false });
  const n = 30;
  const clients = await Promise.all(Array.from({ length: n }, (_, i) => chat(t, cluster.proxy, `poller${i}`, { transport: TRANSPORTS.polling })));
  const byNode = {};
  for (const c of clients) {
    const node = Cluster.nodeOf(engineId(c));
    assert.ok(NODES.includes(node), `sid ${engineId(c)} names no node`);
    byNode[node] = (byNode[node] ?? 0) + 1;
  }
  // New sessions are spread: least_conn over handshakes that do not stay is a round robin.
  for (const id of NODES) assert.ok(byNode[id] >= 5, `node ${id} got ${byNode[id] ?? 0} of ${n}: ${JSON.stringify(byNode)}`);

  // Each client: several round trips (posts, polls) on its session.
  await Promise.all(clients.map(async (c, i) => {
    await c.ok('room:join', { room: 'lobby' });
    for (let k = 0; k < 3; k++) await c.send('lobby', `hello ${i}.${k}`);
    await c.ok('rooms:list', {});
  }));
  for (const c of clients) assert.equal(c.socket.connected, true);

  // Each node holds exactly the sessions its prefix names.
  const g = await gauges(cluster);
  for (const id of NODES) assert.equal(g[id].polling, byNode[id], `node ${id}: ${JSON.stringify(g)}`);

  const ids = clients.map(engineId);
  for (const c of clients) c.close();
  // nginx logs a request when it ends: every session request went to its own node, none failed.
  await eventually(() => {
    const done = new Set(cluster.requests().filter((r) => r.sid).map((r) => r.sid));
    return ids.every((id) => done.has(id));
  }, 'every session in the access log');
  assert.deepEqual(misrouted(cluster), [], cluster.logs());
  const perSession = new Map();
  for (const r of cluster.requests()) if (r.sid) perSession.set(r.sid, (perSession.get(r.sid) ?? 0) + 1);
  for (const id of ids) assert.ok(perSession.get(id) >= 4, `few requests for ${id}`);
});

test('WebSocket through nginx: the upgrade reaches the session\'s node; direct WebSockets spread', T, async (t) => {
  const cluster = await startCluster({ t, store: 'sqlite', redis: false });
  // Polling first, then the upgrade request, which carries the sid.
  const upgraded = await Promise.all(Array.from({ length: 6 }, (_, i) => chat(t, cluster.proxy, `upg${i}`, { transport: TRANSPORTS.default })));
  for (const c of upgraded) assert.equal(c.socket.io.engine.transport.name, 'websocket');
  const direct = await Promise.all(Array.from({ length: 6 }, (_, i) => chat(t, cluster.proxy, `ws${i}`, { transport: TRANSPORTS.websocket })));
  const all = [...upgraded, ...direct];
  const byNode = {};
  for (const c of all) {
    const node = Cluster.nodeOf(engineId(c));
    assert.ok(NODES.includes(node), engineId(c));
    byNode[node] = (byNode[node] ?? 0) + 1;
  }
  assert.equal(Object.keys(byNode).length, 3, `all nodes used: ${JSON.stringify(byNode)}`);
  await Promise.all(all.map(async (c, i) => {
    await c.ok('room:join', { room: 'lobby' });
    await c.send('lobby', `over websocket ${i}`);
  }));
  const g = await gauges(cluster);
  for (const id of NODES) assert.deepEqual(g[id], { polling: 0, websocket: byNode[id] ?? 0 }, `node ${id}: ${JSON.stringify(g)}`);

  const upgradedIds = upgraded.map(engineId);
  for (const c of all) c.close();
  await eventually(() => cluster.requests().filter((r) => r.status === 101).length === all.length, 'the WebSockets in the access log');
  assert.deepEqual(misrouted(cluster), [], cluster.logs());
  // The upgrades (sid in the query) went to the session's node; direct ones had no sid.
  const upgrades = cluster.requests().filter((r) => r.status === 101 && r.sid);
  assert.deepEqual(upgrades.map((r) => r.sid).sort(), upgradedIds.sort());
});

test('nginx passes the client\'s Host and scheme: the origin check of a node accepts its own page', T, async (t) => {
  const cluster = await startCluster({ t, store: 'sqlite', redis: false });
  const handshake = (origin) => fetch(`${cluster.url}/socket.io/?EIO=4&transport=polling`, {
    headers: { Origin: origin }, signal: AbortSignal.timeout(WAIT_MS),
  });
  // The page's origin is nginx's (Host with its port), over http as X-Forwarded-Proto says.
  const accepted = await handshake(cluster.url);
  assert.equal(accepted.status, 200);
  const { sid } = JSON.parse((await accepted.text()).slice(1));
  // Closed at once (a close packet), so that its node need not wait for it when stopping.
  const close = await fetch(`${cluster.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
    method: 'POST', body: '1', headers: { Origin: cluster.url }, signal: AbortSignal.timeout(WAIT_MS),
  });
  assert.equal(close.status, 200);
  assert.equal((await handshake(cluster.url.replace('http:', 'https:'))).status, 403);
  assert.equal((await handshake('http://elsewhere.example')).status, 403);
  const health = await fetch(`${cluster.url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, 'ok');
});

test('with a node killed, new clients connect through nginx to the others; its clients move', T, async (t) => {
  const cluster = await startCluster({ t, store: 'sqlite', redis: false });
  // Clients on every node, reconnecting by themselves as a browser's would.
  const opts = (transport) => ({ transport, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
  const before = await Promise.all(Array.from({ length: 9 }, (_, i) => chat(t, cluster.proxy, `early${i}`, opts(i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket))));
  const onB = before.filter((c) => Cluster.nodeOf(engineId(c)) === 'b');
  assert.ok(onB.length > 0, 'some clients on b');

  const reconnected = onB.map((c) => nextEvent(c.socket, 'connect', { ms: 20000 }));
  await cluster.kill('b', 'SIGKILL');

  // The whole service is up; node b is not.
  assert.equal((await fetch(`${cluster.url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) })).status, 200);
  assert.equal((await fetch(`${cluster.url}/nodes/b/healthz`, { signal: AbortSignal.timeout(WAIT_MS) })).status, 502);

  // b's clients lost their session (502 or a closed socket) and made a new one elsewhere.
  await withTimeout(Promise.all(reconnected), 25000, 'b\'s clients to reconnect');
  for (const c of onB) {
    assert.ok(['a', 'c'].includes(Cluster.nodeOf(engineId(c))), `moved to ${engineId(c)}`);
    await c.ok('room:join', { room: 'lobby' });
  }

  // New clients, polling and WebSocket, all land on a or c.
  const after = await Promise.all(Array.from({ length: 12 }, (_, i) => chat(t, cluster.proxy, `late${i}`, { transport: i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket })));
  for (const c of after) {
    assert.ok(['a', 'c'].includes(Cluster.nodeOf(engineId(c))), engineId(c));
    await c.ok('room:join', { room: 'lobby' });
    await c.send('lobby', 'still here');
  }
  const late = new Set(after.map((c) => Cluster.nodeOf(engineId(c))));
  assert.deepEqual([...late].sort(), ['a', 'c']);

  // Back on its port, b answers through nginx again.
  await cluster.restartNode('b');
  assert.equal((await fetch(`${cluster.url}/nodes/b/healthz`, { signal: AbortSignal.timeout(WAIT_MS) })).status, 200);
  for (const c of [...before, ...after]) c.close();
});
