// The chat across three chatd nodes (cluster mode: one store, one Redis) with the stock
// socket.io-client: users connect to a node directly (its URL) or through nginx
// (docs/deploy/nginx-cluster.conf) and must not tell the difference from one server: order and
// seq, history, presence over tabs on several nodes, typing, direct messages to every tab,
// online-name uniqueness, catch-up after moving to another node.
//
// The store is PostgreSQL when chatd takes `--store postgres://…`, else one SQLite data dir
// shared by the nodes. SQLite takes one writing process at a time and chatd's SQLite store does
// not wait for another process's lock (`unavailable`, "database is locked"): there the two
// senders of the ordering test take turns instead of sending at once. `cargo build -p chatd`
// first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  barrier, catchUp, chat, chatAs, chatRefused, elapse, expectError, fullHistory, nextId, range, register, sendMany, seqs, TRANSPORTS,
} from '../helpers/chatd.mjs';
import { chatdHasPostgres, Cluster, startCluster } from '../helpers/cluster.mjs';

const T = { timeout: 30000 };
const GRACE = 1000; // --presence-grace-ms
const TYPING = 800; // --typing-timeout-ms
const EARLY = 5; // timers never fire early; clocks round by a millisecond or two

const isPresence = (room, user, online) => (p) => p.room === room && p.user === user && (online === undefined || p.online === online);

const STORE = chatdHasPostgres() ? 'postgres' : 'sqlite-shared';

describe(`chatd cluster: the chat across nodes (${STORE})`, { timeout: 60000 }, () => {
  let cluster;
  let A; let B; let C; let NGINX;
  before(async () => {
    cluster = await startCluster({
      store: STORE,
      flags: { 'presence-grace-ms': GRACE, 'typing-timeout-ms': TYPING, 'message-burst': 1000, 'message-rate': 1000 },
    });
    ({ a: A, b: B, c: C } = cluster.nodes);
    NGINX = cluster.proxy;
  });
  after(async () => { await cluster?.stop(); });

  /** Creates `room` (on `owner`'s node) and joins everyone; waits until each sees the others. */
  async function roomWith(room, owner, ...others) {
    await owner.ok('room:create', { room });
    const everyone = [owner, ...others];
    for (const c of everyone) await c.ok('room:join', { room });
    // Presence of the last to join has reached everyone: every node knows every member.
    await barrier(owner, room, others);
    return everyone;
  }

  it('a message sent on one node reaches the others in order, with the same seq; history agrees', T, async (t) => {
    const alice = await chat(t, A, 'alice1');
    const bob = await chat(t, B, 'bob1', { transport: TRANSPORTS.polling });
    const carol = await chat(t, C, 'carol1', { transport: TRANSPORTS.websocket });
    const dave = await chat(t, NGINX, 'dave1');
    await roomWith('order', alice, bob, carol, dave);
    const start = (await alice.ok('history', { room: 'order' })).messages.at(-1)?.seq ?? 0;

    // Two senders on two nodes, 25 messages each, pipelined; at once where the store allows.
    const burstA = () => sendMany(alice, 'order', 25, { prefix: nextId('a') });
    const burstB = () => sendMany(bob, 'order', 25, { prefix: nextId('b') });
    const [fromA, fromB] = STORE === 'postgres'
      ? await Promise.all([burstA(), burstB()])
      : [await burstA(), await burstB()];
    const acked = [...fromA, ...fromB].map((e) => {
      assert.ok(e.res?.ok, `send ${e.id}: ${JSON.stringify(e.res ?? e.err)}\n${cluster.logs()}`);
      return e.res.message;
    }).sort((x, y) => x.seq - y.seq);
    // One room, one sequence: 50 seqs without gaps or doubles, whichever node stored them.
    assert.deepEqual(seqs(acked), range(start + 1, start + 50));
    // Each sender's own messages in the order it sent them.
    for (const mine of [fromA, fromB]) {
      const s = mine.map((e) => e.res.message.seq);
      assert.deepEqual(s, [...s].sort((x, y) => x - y));
    }

    // Every member, on any node, gets everyone else's messages in seq order, as acked.
    for (const [who, own] of [[alice, fromA], [bob, fromB], [carol, []], [dave, []]]) {
      const ownIds = new Set(own.map((e) => e.id));
      const expected = acked.filter((m) => !ownIds.has(m.id));
      const got = await who.events.message.waitCount((m) => m.room === 'order' && m.seq > start, expected.length, { ms: 15000 });
      assert.deepEqual(got, expected, `${who.user} (${Cluster.nodeOf(who.socket.io.engine.id)})`);
    }

    // History from any node is the same sequence.
    for (const who of [alice, bob, carol, dave]) {
      const h = (await fullHistory(who, 'order')).filter((m) => m.seq > start);
      assert.deepEqual(h, acked);
    }
  });

  it('presence: two tabs of one user on two nodes count once; gone only after the last tab and the grace', T, async (t) => {
    const watcher = await chat(t, C, 'watcher2');
    await watcher.ok('room:create', { room: 'tabs' });
    await watcher.ok('room:join', { room: 'tabs' });
    const tab1 = await chat(t, A, 'erin2');
    const tab2 = await chat(t, B, 'erin2', { token: tab1.token, transport: TRANSPORTS.polling });
    assert.equal(tab2.user, 'erin2');
    await tab1.ok('room:join', { room: 'tabs' });
    await tab2.ok('room:join', { room: 'tabs' });
    await barrier(tab2, 'tabs', [watcher, tab1]);
    assert.deepEqual(watcher.events.presence.filter(isPresence('tabs', 'erin2')), [{ room: 'tabs', user: 'erin2', online: true }],
      'one join for two tabs on two nodes');
    const members = async (c) => (await c.ok('rooms:list', {})).rooms.find((r) => r.name === 'tabs')?.members;
    for (const c of [watcher, tab1, tab2]) assert.equal(await members(c), 2, `members seen on ${Cluster.nodeOf(c.socket.io.engine.id)}`);

    // The tab on node a goes: erin is still there through node b, after a's grace too.
    tab1.close();
    await elapse(GRACE + 300);
    await barrier(tab2, 'tabs', [watcher]);
    assert.deepEqual(watcher.events.presence.filter(isPresence('tabs', 'erin2')), [{ room: 'tabs', user: 'erin2', online: true }],
      'no leave while a tab remains on another node');
    assert.equal(await members(watcher), 2);

    // The last tab goes: the leave is announced once the grace is over, not before.
    const t0 = performance.now();
    tab2.close();
    const left = await watcher.events.presence.waitFor(isPresence('tabs', 'erin2', false), { ms: GRACE + 8000 });
    const waited = performance.now() - t0;
    assert.deepEqual(left, { room: 'tabs', user: 'erin2', online: false });
    assert.ok(waited >= GRACE - EARLY, `leave announced after ${waited.toFixed(0)} ms, grace is ${GRACE} ms`);
    assert.equal(await members(watcher), 1);
    assert.equal(watcher.events.presence.count(isPresence('tabs', 'erin2')), 2);
  });

  it('typing on one node is relayed to the members on the others', T, async (t) => {
    // Typing is volatile: the observers are on WebSocket and otherwise idle.
    const typist = await chat(t, A, 'typist3', { transport: TRANSPORTS.websocket });
    const onB = await chat(t, B, 'obs3b', { transport: TRANSPORTS.websocket });
    const onC = await chat(t, C, 'obs3c', { transport: TRANSPORTS.websocket });
    await roomWith('typing', typist, onB, onC);
    await typist.ok('typing', { room: 'typing', typing: true });
    for (const o of [onB, onC]) {
      assert.deepEqual(await o.events.typing.waitFor((e) => e.typing), { room: 'typing', user: 'typist3', typing: true });
    }
    await typist.ok('typing', { room: 'typing', typing: false });
    for (const o of [onB, onC]) {
      assert.deepEqual(await o.events.typing.waitFor((e) => !e.typing, { ms: TYPING + 5000 }), { room: 'typing', user: 'typist3', typing: false });
    }
    assert.equal(typist.events.typing.length, 0, 'not echoed to the typist');
  });

  it('a direct message reaches every tab of the recipient on every node, and the sender\'s other tabs', T, async (t) => {
    const bobA = await chat(t, A, 'bob4');
    const bobB = await chat(t, B, 'bob4', { token: bobA.token, transport: TRANSPORTS.polling });
    const bobC = await chat(t, C, 'bob4', { token: bobA.token, transport: TRANSPORTS.websocket });
    const alice = await chat(t, NGINX, 'alice4');
    const aliceOther = await chat(t, C, 'alice4', { token: alice.token });
    const sent = (await alice.ok('dm:send', { to: 'bob4', id: nextId('dm'), text: 'psst' })).message;
    assert.equal(sent.room, '@alice4:bob4');
    for (const tab of [bobA, bobB, bobC, aliceOther]) {
      assert.deepEqual(await tab.events.dm.waitFor((m) => m.id === sent.id, { ms: 10000 }), sent);
    }
    // The answer from node b reaches alice through nginx and on node c.
    const reply = (await bobB.ok('dm:send', { to: 'alice4', id: nextId('dm'), text: 'hi!' })).message;
    for (const tab of [alice, aliceOther, bobA, bobC]) {
      assert.deepEqual(await tab.events.dm.waitFor((m) => m.id === reply.id, { ms: 10000 }), reply);
    }
    const h = await bobC.ok('dm:history', { with: 'alice4' });
    assert.deepEqual(h.messages.map((m) => m.id), [sent.id, reply.id]);
    assert.equal(alice.events.dm.count((m) => m.id === sent.id), 0, 'not echoed to the sending tab');
  });

  it('an online name is unique across the nodes; its token takes it on any node', T, async (t) => {
    const holder = await chat(t, A, 'Frank5');
    for (const [srv, name] of [[B, 'frank5'], [C, 'FRANK5'], [NGINX, 'Frank5']]) {
      const err = await chatRefused(t, srv, { username: name });
      assert.equal(err.data?.code, 'name_taken', `${name} on ${srv.url}: ${err.message}`);
    }
    const tab = await chat(t, C, 'frank5', { token: holder.token });
    assert.equal(tab.user, 'Frank5');
  });

  // docs/protocol.md: the name stays reserved for the grace period after the last connection;
  // in cluster mode the last node to let it go deletes its lease.
  it('after the last tab and the grace, the name is free on every node', T, async (t) => {
    // Two names, each held by tabs on A and C, then taken on another node and on A.
    for (const name of ['Gwen5', 'Hana5']) {
      const holder = await chat(t, A, name);
      const tab = await chat(t, C, name.toLowerCase(), { token: holder.token });
      holder.close();
      tab.close();
    }
    await elapse(GRACE + 300);
    for (const [srv, name] of [[B, 'gwen5'], [A, 'hana5']]) {
      const taker = await chat(t, srv, name);
      assert.equal(taker.user, name);
      assert.notEqual(taker.token, undefined);
      taker.close();
    }
  });

  it('catch-up: room:join with since after reconnecting to another node gets what was missed', T, async (t) => {
    const gina = await chat(t, A, 'gina6');
    const hal = await chat(t, B, 'hal6');
    await roomWith('catchup', gina, hal);
    const seen = await hal.send('catchup', 'before gina leaves');
    await gina.events.message.waitFor((m) => m.id === seen.id);
    gina.close();

    // While she is away, hal sends 120 messages (more than one page).
    const burst = await sendMany(hal, 'catchup', 120);
    const missed = burst.map((e) => {
      assert.ok(e.res?.ok, JSON.stringify(e.res ?? e.err));
      return e.res.message;
    });

    // She comes back on node c (a fresh connection: no recovery) and catches up from seen.seq.
    const back = await chat(t, C, 'gina6', { token: gina.token });
    const { messages } = await catchUp(back, 'catchup', seen.seq);
    assert.deepEqual(messages, missed);
    // And through nginx, on whichever node it picks.
    const again = await chat(t, NGINX, 'gina6', { token: gina.token });
    assert.deepEqual((await catchUp(again, 'catchup', seen.seq)).messages, missed);
    // New messages reach her on both nodes.
    const next = await hal.send('catchup', 'welcome back');
    await back.events.message.waitFor((m) => m.id === next.id);
    await again.events.message.waitFor((m) => m.id === next.id);
  });

  it('a private room is closed on every node; a read marker moved on one node reaches the tabs on the others', T, async (t) => {
    const ann = (await register(A, nextId('ann').replace(/\W/g, '').slice(0, 20))).token;
    const bob = (await register(B, nextId('bob').replace(/\W/g, '').slice(0, 20))).token;
    const onA = await chatAs(t, A, { token: ann });
    const onC = await chatAs(t, C, { token: ann });
    const stranger = await chatAs(t, B, { token: bob });
    const room = nextId('priv').replace(/\W/g, '').slice(0, 30);
    await onA.ok('room:create', { room, private: true });
    for (const c of [onA, onC]) await c.ok('room:join', { room });
    expectError(await stranger.ask('room:join', { room }), 'no_such_room', 'a stranger on another node');
    const sent = await onA.send(room, 'one');
    await onC.events.message.waitFor((m) => m.id === sent.id);
    await onA.ok('room:read', { room, seq: sent.seq });
    assert.deepEqual(await onC.events.read.waitFor(), { room, seq: sent.seq });
  });

  it('rooms:list on a node counts the members the other nodes have, in rooms not running there', T, async (t) => {
    const ivan = await chat(t, A, 'ivan7');
    await ivan.ok('room:create', { room: 'elsewhere' });
    await ivan.ok('room:join', { room: 'elsewhere' });
    // Nobody on node b is in the room: its count comes from the other nodes' presence.
    const judy = await chat(t, B, 'judy7');
    const deadline = Date.now() + 5000;
    let listed;
    do {
      listed = (await judy.ok('rooms:list', {})).rooms.find((r) => r.name === 'elsewhere');
    } while (listed?.members !== 1 && Date.now() < deadline);
    assert.equal(listed?.members, 1);
  });

  it('each node reports its dependencies on /healthz and the cluster on /metrics', T, async () => {
    for (const node of [A, B, C]) {
      const res = await node.get('/healthz');
      assert.equal(res.status, 200);
      const body = JSON.parse(res.text);
      assert.equal(body.status, 'ok');
      assert.equal(body.store, 'ok');
      assert.equal(body.redis, 'ok');
      // Beats every second: every node has heard the two others by now, or soon.
      const deadline = Date.now() + 5000;
      let m = await node.metrics();
      while (m.get('chatd_cluster_nodes') !== 3 && Date.now() < deadline) m = await node.metrics();
      assert.equal(m.get('chatd_cluster_nodes'), 3);
      assert.equal(m.get('chatd_cluster_redis_up'), 1);
      assert.ok(m.get('chatd_cluster_published_total') > 0);
      assert.equal(m.get('chatd_cluster_publish_errors_total'), 0);
      assert.ok(m.get('chatd_cluster_publish_seconds_count') > 0);
      assert.ok(m.has('chatd_store_write_seconds_count'));
    }
  });
});
