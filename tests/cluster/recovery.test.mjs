// Socket.IO connection state recovery in a chatd cluster (docs/deploy.md, "Several chatd
// nodes"; chatd/src/cluster/recovery.rs): a stock client on node a loses its transport; while it
// is away, messages are sent on the other nodes; it comes back with what the stock client sends
// to recover (its pid and last offset, with the same auth), on node b or on node a itself. It is
// recovered, gets exactly the missed messages in order and then the live ones, and the others see
// no leave or join of its user.
//
// `cargo build -p chatd` first.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import {
  barrier, chat, closeSocket, connected, elapse, io, nextEvent, range, Recorder, sendMany, TRANSPORTS, WAIT_MS, withTimeout,
} from '../helpers/chatd.mjs';
import { chatdHasPostgres, startCluster } from '../helpers/cluster.mjs';

const GRACE = 2000; // --presence-grace-ms: longer than the client is away
const SKIP = chatdHasPostgres() ? false : 'this chatd has no PostgreSQL store';

/**
 * Watches `key` in Redis (keyspace notifications): `written` resolves once it is set, so the
 * test knows the node saved the disconnected session before anyone tries to recover it.
 */
async function watchKey(t, redisUrl, key) {
  const admin = createClient({ url: redisUrl });
  const sub = admin.duplicate();
  const close = async () => {
    for (const c of [sub, admin]) if (c.isOpen) await c.disconnect().catch(() => {});
  };
  t.after(close);
  for (const c of [admin, sub]) c.on('error', () => {}); // Redis goes away first at teardown
  await admin.connect();
  await sub.connect();
  await admin.configSet('notify-keyspace-events', 'K$');
  let resolve;
  const written = new Promise((r) => { resolve = r; });
  await sub.subscribe(`__keyspace@0__:${key}`, (op) => { if (op === 'set') resolve(); });
  return { written, close };
}

describe('chatd cluster: connection state recovery across nodes', { skip: SKIP, timeout: 60000 }, () => {
  for (const target of ['b', 'a']) {
    it(`a client of node a comes back on node ${target}: recovered, the missed messages once and in order, no presence change`, { timeout: 30000 }, async (t) => {
      const cluster = await startCluster({ t, flags: { 'presence-grace-ms': GRACE } });
      const { a: A, b: B, c: C } = cluster.nodes;
      const room = 'recover';
      const alice = await chat(t, A, 'alice', { transport: TRANSPORTS.websocket });
      const bob = await chat(t, B, 'bob');
      const carol = await chat(t, C, 'carol', { transport: TRANSPORTS.websocket });
      const dave = await chat(t, A, 'dave'); // alice's neighbour on node a
      const others = [bob, carol, dave];
      await bob.ok('room:create', { room });
      for (const c of [alice, ...others]) await c.ok('room:join', { room });
      await barrier(bob, room, [alice, carol, dave]);

      // alice got a message, so she has an offset to recover from.
      const seen = await bob.send(room, 'before alice drops');
      await alice.events.message.waitFor((m) => m.id === seen.id);
      const old = alice.socket;
      const { _pid: pid, id: oldId } = old;
      const offset = old._lastOffset;
      assert.ok(pid && offset, `pid ${pid}, offset ${offset}`);
      const presenceBefore = others.map((o) => o.events.presence.length);

      // Her transport drops; node a saves her session for whoever she comes back to.
      const saved = await watchKey(t, cluster.redis.url, `chatd:session:${pid}`);
      const gone = nextEvent(old, 'disconnect');
      const droppedAt = performance.now();
      old.io.engine.close();
      await gone;
      await withTimeout(saved.written, WAIT_MS, 'node a to save the session in Redis');
      await saved.close();

      // While she is away: messages on node b (and c).
      const missed = [];
      for (let i = 0; i < 3; i++) {
        missed.push(await bob.send(room, `missed ${i} from b`));
        if (i < 2) missed.push(await carol.send(room, `missed ${i} from c`));
      }

      // Back on the target node: a new stock client given what the old one sends to recover.
      const back = io(`${cluster.nodes[target].url}/chat`, {
        path: '/socket.io/', forceNew: true, reconnection: false, autoConnect: false, transports: ['websocket'],
        auth: { username: 'alice', token: alice.token },
      });
      t.after(() => closeSocket(back));
      back._pid = pid;
      back._lastOffset = offset;
      const messages = new Recorder(back, 'message');
      const presence = new Recorder(back, 'presence');
      back.connect();
      await connected(back);
      assert.equal(back.recovered, true, `not recovered on node ${target}\n${cluster.logs()}`);
      assert.equal(back.id, oldId, 'the same socket id');

      // The missed messages first, in order, then live ones.
      const got = await messages.waitCount((m) => m.room === room, missed.length);
      assert.deepEqual(got, missed);
      const live = [await bob.send(room, 'live from b'), await carol.send(room, 'live from c'), await dave.send(room, 'live from a')];
      await messages.waitFor((m) => m.id === live.at(-1).id);
      // She is a member again on her new node: her message reaches everyone.
      const hers = (await back.timeout(WAIT_MS).emitWithAck('message:send', { room, id: 'alice-back', text: 'I am back' }));
      assert.equal(hers.ok, true, JSON.stringify(hers));
      for (const o of others) await o.events.message.waitFor((m) => m.id === 'alice-back');

      // After the grace period since she dropped, the others have seen nothing of her going.
      await elapse(Math.max(0, droppedAt + GRACE + 1000 - performance.now()));
      await barrier(bob, room, [carol, dave]);
      const final = await bob.send(room, 'the end');
      await messages.waitFor((m) => m.id === final.id);
      // Everything after what she had: each once, in order (her own by its ack).
      const all = messages.filter((m) => m.room === room);
      assert.deepEqual(all.slice(0, missed.length + live.length), [...missed, ...live]);
      assert.deepEqual(all.map((m) => m.seq), range(seen.seq + 1, final.seq).filter((q) => q !== hers.message.seq), 'each message once, in order');
      others.forEach((o, i) => {
        assert.deepEqual(o.events.presence.all.slice(presenceBefore[i]).filter((p) => p.user === 'alice'), [],
          `${o.user} saw alice's presence change`);
      });
      assert.deepEqual(presence.filter((p) => p.room === room), [], 'alice herself sees no presence change');
      for (const o of others) {
        const listed = (await o.ok('rooms:list', {})).rooms.find((r) => r.name === room);
        assert.equal(listed.members, 4, `rooms:list at ${o.user}`);
      }
      assert.deepEqual([...messages.problems, ...alice.problems()], []);
    });
  }
});

// A client that a node was still catching up in a room (a long backlog, a full outgoing queue)
// when that node drained keeps the room on the next node, from where it was.
describe('chatd cluster: a client moved while still being caught up', { skip: SKIP, timeout: 90000 }, () => {
  it('keeps its room and gets every message of the backlog, then the live ones', { timeout: 80000 }, async (t) => {
    const cluster = await startCluster({
      t,
      nginx: false,
      flags: {
        'presence-grace-ms': 200,
        'history-window': 10,
        'message-rate': 100000,
        'message-burst': 100000,
        'drain-window-ms': 200,
      },
    });
    const { a: A, b: B, c: C } = cluster.nodes;
    const room = 'backlog';
    const alice = await chat(t, B, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, C, 'bob', { transport: TRANSPORTS.websocket });
    await bob.ok('room:create', { room });
    for (const c of [alice, bob]) await c.ok('room:join', { room });
    const seen = await bob.send(room, 'before alice drops');
    await alice.events.message.waitFor((m) => m.id === seen.id);
    const { _pid: pid, _lastOffset: offset } = alice.socket;
    assert.ok(pid && offset, `pid ${pid}, offset ${offset}`);

    // Her transport drops on node b, which saves her session; b restarts (so what it records
    // from now on is not in the stream of her offset) and she leaves the room.
    let saved = await watchKey(t, cluster.redis.url, `chatd:session:${pid}`);
    const left = bob.events.presence.waitFor((p) => p.room === room && p.user === 'alice' && !p.online);
    alice.socket.io.engine.close();
    await withTimeout(saved.written, WAIT_MS, 'node b to save the session');
    await saved.close();
    await left;
    await cluster.kill('b', 'SIGKILL');
    await cluster.restartNode('b');

    // A backlog larger than a connection's outgoing queue (4 MiB).
    const text = (i) => `${i} ${'x'.repeat(3900)}`;
    const backlog = [];
    for (let i = 0; i < 12; i++) {
      const sent = await sendMany(bob, room, 100, { text });
      for (const s of sent) assert.equal(s.res?.ok, true, JSON.stringify(s.res ?? s.err));
      backlog.push(...sent.map((s) => s.res.message));
    }

    // She resumes on node b with a client that never polls: b rejoins her to the room and
    // catches her up into a queue that fills up; she is in the room, not yet live.
    const poll = `${cluster.nodes.b.url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(poll)).text();
    const sid = JSON.parse(open.slice(1)).sid;
    const back = bob.events.presence.waitFor((p) => p.room === room && p.user === 'alice' && p.online);
    const auth = { username: 'alice', token: alice.token, pid, offset };
    const res = await fetch(`${poll}&sid=${sid}`, { method: 'POST', body: `40/chat,${JSON.stringify(auth)}` });
    assert.equal(res.status, 200);
    await back;

    // Node b drains: her connection closes mid catch-up and her session is saved again.
    saved = await watchKey(t, cluster.redis.url, `chatd:session:${pid}`);
    const exit = await cluster.kill('b', 'SIGTERM');
    assert.equal(exit.code, 0);
    await withTimeout(saved.written, WAIT_MS, 'node b to save the session when it drained');
    await saved.close();

    // A stock client resumes on node a: recovered, in the room, every message after what she had.
    const resumed = io(`${A.url}/chat`, {
      path: '/socket.io/', forceNew: true, reconnection: false, autoConnect: false, transports: ['websocket'],
      auth: { username: 'alice', token: alice.token },
    });
    t.after(() => closeSocket(resumed));
    resumed._pid = pid;
    resumed._lastOffset = offset;
    const messages = new Recorder(resumed, 'message');
    resumed.connect();
    await connected(resumed);
    assert.equal(resumed.recovered, true, `not recovered\n${cluster.logs()}`);
    await messages.waitFor((m) => m.id === backlog.at(-1).id, { ms: 30000 });
    const live = await bob.send(room, 'live');
    await messages.waitFor((m) => m.id === live.id);
    assert.deepEqual(messages.filter((m) => m.room === room).map((m) => m.seq), range(seen.seq + 1, live.seq));
  });
});
