// A rolling restart of the three nodes behind nginx while clients chat: each node, stopped with
// SIGTERM, refuses new connections (503: nginx sends them elsewhere), tells its clients it is
// moving them and closes their connections spread over --drain-window-ms; the stock client
// reconnects by itself through nginx to another node and recovers its session there (same id,
// rooms, every missed message), so nobody loses a message, sees one twice, or sees anybody
// leave. `cargo build -p chatd` first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, nextEvent, nextId, TRANSPORTS } from '../helpers/chatd.mjs';
import { startCluster } from '../helpers/cluster.mjs';

const CLIENTS = 45;
const WINDOW = 2000; // --drain-window-ms
const SEND_EVERY = 400;

describe('chatd cluster: rolling restart of every node, clients chatting', { timeout: 120000 }, () => {
  let cluster;
  before(async () => {
    cluster = await startCluster({
      flags: {
        'presence-grace-ms': 4000,
        'node-timeout-ms': 3000,
        'drain-window-ms': WINDOW,
        'message-burst': 1000,
        'message-rate': 1000,
        'max-connections-per-ip': 1000,
      },
    });
  });
  after(async () => { await cluster?.stop(); });

  it('every acked message reaches every member once and in order; every client recovers; no presence flicker', {
    timeout: 110000,
    todo: 'about one run in three, one client misses or gets twice one message around a move',
  }, async (t) => {
    const room = 'rolling';
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      const transport = i % 3 === 0 ? TRANSPORTS.websocket : TRANSPORTS.default;
      const c = await chat(t, cluster.proxy, `roller${i}`, {
        transport,
        reconnection: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 500,
      });
      c.name = `roller${i}`;
      c.seqs = []; // from message events
      c.acks = new Set(); // its own, by their acks
      c.reconnects = [];
      c.unrecovered = 0;
      c.moving = 0;
      c.timeline = [];
      c.socket.on('message', (m) => { if (m.room === room) { c.seqs.push(m.seq); c.timeline.push(m.seq); } });
      c.socket.on('moving', () => { c.moving += 1; c.timeline.push('moving'); });
      c.socket.on('disconnect', (r) => { c.timeline.push(`disconnect:${r}`); });
      c.socket.on('connect', () => {
        c.timeline.push(`connect:${c.socket.io.engine?.id?.split('-')[0]}:${c.socket.recovered}`);
        c.reconnects.push(Date.now());
        if (!c.socket.recovered) c.unrecovered += 1;
      });
      clients.push(c);
    }
    await clients[0].ok('room:create', { room });
    for (const c of clients) await c.ok('room:join', { room });
    const names = new Set(clients.map((c) => c.name));
    const gone = [];
    for (const c of clients) {
      c.socket.on('presence', (p) => { if (p.room === room && !p.online && names.has(p.user)) gone.push(`${c.name} saw ${p.user} leave`); });
    }

    // Everybody chats: each message is resent with its id until acked ok.
    const acked = new Map(); // seq -> sender
    let sending = true;
    const senders = clients.map(async (c, i) => {
      await new Promise((r) => setTimeout(r, (i * SEND_EVERY) / CLIENTS));
      while (sending) {
        const id = nextId(c.name);
        for (;;) {
          let res;
          try {
            res = await c.socket.timeout(3000).emitWithAck('message:send', { room, id, text: `${c.name} ${id}` });
          } catch { /* no ack (moved meanwhile): the same id again */ }
          if (res?.ok) {
            acked.set(res.message.seq, c);
            c.acks.add(res.message.seq);
            break;
          }
          if (res && !['unavailable', 'overloaded', 'rate_limited'].includes(res.code)) throw new Error(JSON.stringify(res));
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, SEND_EVERY));
      }
    });

    // One node after the other: SIGTERM, it exits 0 once drained, it starts again.
    const spans = {};
    for (const id of ['a', 'b', 'c']) {
      const before = clients.map((c) => c.reconnects.length);
      const drained = Date.now();
      const exit = await cluster.kill(id, 'SIGTERM');
      assert.equal(exit.code, 0, `node ${id} exit ${JSON.stringify(exit)}`);
      const moved = clients.filter((c, i) => c.reconnects.length > before[i]);
      if (moved.length >= 4) {
        const times = moved.map((c) => c.reconnects.at(-1) - drained);
        spans[id] = { moved: moved.length, first: Math.min(...times), last: Math.max(...times) };
      }
      await cluster.restartNode(id);
    }
    sending = false;
    await Promise.all(senders);

    // Every client has every acked message (its own by their acks) once, in order.
    const all = [...acked.keys()].sort((x, y) => x - y);
    const deadline = Date.now() + 10000;
    const complete = (c) => all.every((s) => c.acks.has(s) || c.seqs.includes(s));
    while (!clients.every(complete) && Date.now() < deadline) {
      await nextEvent(clients.find((c) => !complete(c)).socket, 'message', { ms: 10000 }).catch(() => {});
    }
    const report = [];
    for (const c of clients) {
      const mine = new Set([...c.seqs, ...c.acks]);
      const missing = all.filter((s) => !mine.has(s));
      const node = (x) => x.socket.io.engine?.id?.split('-')[0];
      if (missing.length) {
        const i = c.timeline.findIndex((e) => typeof e === 'number' && e > missing[0]);
        report.push(`  timeline: ${c.timeline.slice(Math.max(0, i - 8), i + 4).join(' ')}`);
      }
      if (missing.length) report.push(`${c.name}@${node(c)} misses ${missing.map((m) => `${m} from ${acked.get(m).name}@${node(acked.get(m))}`).join(',')} (moved ${c.moving}, reconnects ${c.reconnects.length}, unrecovered ${c.unrecovered})`);
    }
    if (report.length) {
      const logs = cluster.logs().split('\n').filter((l) => /WARN|ERROR|---|DBG/.test(l)).join('\n');
      for (const n of ['a', 'b', 'c']) (await import('node:fs')).writeFileSync(`/tmp/roll-node-${n}.txt`, cluster.nodes[n].stderr());
      (await import('node:fs')).writeFileSync('/tmp/roll-logs.txt', `${report.join('\n')}\n${logs}\nSIDS ${clients.map((c) => `${c.name}=${c.socket.id}/${c.socket.io.engine?.id}`).join(' ')}\nCONNS ${JSON.stringify(await Promise.all(['a', 'b', 'c'].map(async (n) => [...(await cluster.nodes[n].metrics()).entries()].filter(([k]) => k.startsWith('chatd_connections')))))}`);
      assert.fail(`${report.slice(0, 6).join('\n')}\n${logs}`);
    }
    for (const c of clients) {
      // Its own messages may come back in a catch-up (a resend acked after a move): once.
      const dups = c.seqs.length - new Set(c.seqs).size;
      assert.equal(dups, 0, `${c.name} got ${dups} twice`);
      assert.equal(c.unrecovered, 0, `${c.name} reconnected without recovery`);
      assert.ok(c.reconnects.length >= 1, `${c.name} was never moved`);
      assert.ok(c.moving >= 1, `${c.name} was not told it is moving`);
    }
    // The events came in sequence order.
    for (const c of clients) {
      const events = c.seqs;
      for (let i = 1; i < events.length; i++) assert.ok(events[i] > events[i - 1], `${c.name}: ${events[i - 1]} then ${events[i]}`);
    }
    assert.deepEqual(gone, []);
    // The moves were spread over the window, not all at once.
    for (const [id, s] of Object.entries(spans)) {
      assert.ok(s.last - s.first >= WINDOW / 3, `node ${id}: ${s.moved} clients moved within ${s.last - s.first} ms`);
    }
    t.diagnostic(`${all.length} messages; moves per node: ${JSON.stringify(spans)}`);
  });
});
