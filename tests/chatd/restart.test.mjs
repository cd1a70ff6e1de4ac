// chatd end-to-end: durability. "A message is acknowledged only once it is committed to disk,
// so even `kill -9` loses no acknowledged message" (README); SIGTERM stops chatd cleanly (exit
// 0, clients see a disconnect, data kept). Each test restarts chatd on the SAME data directory.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, seqs, range, sendMany, fullHistory, nextEvent, catchUp,
} from '../helpers/chatd.mjs';

const T = { timeout: 60000 };
const FAST = { 'message-rate': 100000, 'message-burst': 100000 };

/** Asserts a room's stored messages are exactly `expected` (by seq, id, user and text). */
function assertSame(actual, expected, what) {
  const strip = (m) => ({ room: m.room, seq: m.seq, id: m.id, user: m.user, text: m.text, ts: m.ts });
  assert.deepEqual(actual.map(strip), expected.map(strip), what);
}

describe('chatd durability across kill -9 and restart', () => {
  it('a burst of 200 messages, kill -9 right after the last ack: all 200 are there after restart', T, async (t) => {
    const srv = await startChatd({ ...FAST, 'history-window': 30 }, { t });
    const alice = await chat(t, srv, 'alice');
    await alice.ok('room:create', { room: 'durable', topic: 'keep me' });
    await alice.ok('room:join', { room: 'durable' });

    let killed = null;
    const results = await sendMany(alice, 'durable', 200, {
      prefix: 'b200',
      onAck: (_entry, acked) => {
        if (acked === 200) killed = srv.kill('SIGKILL'); // at once, inside the last ack's callback
      },
    });
    assert.ok(killed, 'the last ack arrived');
    assert.equal((await killed).signal, 'SIGKILL');
    const acked = results.map((r) => {
      assert.ok(r.res?.ok, `message ${r.i}: ${r.err?.message ?? JSON.stringify(r.res)}`);
      return r.res.message;
    });
    assert.deepEqual(seqs(acked), range(1, 200));
    alice.close();

    await srv.restart();
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    assertSame(await fullHistory(bob, 'durable'), acked, 'history after restart');
    const { join: j, messages: caughtUp } = await catchUp(bob, 'durable', 0);
    assert.deepEqual(j.room, { name: 'durable', topic: 'keep me' });
    assertSame(caughtUp, acked, 'room:join since 0 (and its continuations) after restart');
    assert.equal(j.last_seq, 200);
    const j2 = await bob.ok('room:join', { room: 'durable', since: 150 });
    assertSame(j2.messages, acked.slice(150), 'room:join since 150');
    const next = await bob.send('durable', 'after the crash');
    assert.equal(next.seq, 201, 'the sequence continues without a gap');
    // A resend of an acknowledged message is still recognised after the restart.
    const again = await bob.ok('message:send', { room: 'durable', id: acked[7].id, text: acked[7].text });
    assert.equal(again.duplicate, false, 'bob never sent it: a different sender is a different message');
    const alice2 = await chat(t, srv, 'alice');
    await alice2.ok('room:join', { room: 'durable' });
    const dup = await alice2.ok('message:send', { room: 'durable', id: acked[7].id, text: acked[7].text });
    assert.equal(dup.duplicate, true);
    assertSame([dup.message], [acked[7]], 'the original comes back');
  });

  it('kill -9 in the middle of bursts from several clients: every acknowledged message survives; resends fill the rest', T, async (t) => {
    const srv = await startChatd(FAST, { t });
    const N = 60; // per client
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = await chat(t, srv, `writer${i}`, { transport: i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket });
      if (i === 0) await c.ok('room:create', { room: 'midburst' });
      await c.ok('room:join', { room: 'midburst' });
      clients.push(c);
    }
    // All four write at once (their messages are committed in shared batches); chatd is killed
    // on the 80th acknowledgement.
    let acks = 0;
    let killed = null;
    const onAck = () => {
      acks += 1;
      if (acks === 80) killed = srv.kill('SIGKILL');
    };
    const results = await Promise.all(clients.map((c, i) => sendMany(c, 'midburst', N, { prefix: `w${i}`, onAck })));
    await killed;
    const acked = [];
    for (const rs of results) {
      const ok = rs.filter((r) => r.res);
      for (const r of ok) assert.equal(r.res.ok, true, JSON.stringify(r.res));
      // One connection's commands are handled in order: its acknowledged ones are a prefix.
      assert.ok(rs.slice(0, ok.length).every((r) => r.res), 'acks in send order');
      acked.push(...ok.map((r) => r.res.message));
    }
    assert.ok(acked.length >= 80 && acked.length < 4 * N, `acked ${acked.length}`);

    await srv.restart();
    const reader = await chat(t, srv, 'reader');
    const kept = await fullHistory(reader, 'midburst');
    assert.deepEqual(seqs(kept), range(1, kept.length), 'no gap');
    const bySeq = new Map(kept.map((m) => [m.seq, m]));
    for (const m of acked) assertSame([bySeq.get(m.seq)], [m], `acknowledged message ${m.id} kept, unchanged`);
    assert.equal(new Set(kept.map((m) => `${m.user}/${m.id}`)).size, kept.length, 'nothing stored twice');

    // Every client comes back and resends all it sent, with the original ids: what was stored
    // is acknowledged as a duplicate (with its seq), the rest is stored now.
    const storedIds = new Set(kept.map((m) => `${m.user}/${m.id}`));
    const resent = await Promise.all(clients.map(async (c, i) => {
      const again = await chat(t, srv, c.user, { token: c.token });
      await again.ok('room:join', { room: 'midburst' });
      return sendMany(again, 'midburst', N, { prefix: `w${i}` });
    }));
    for (const [i, rs] of resent.entries()) {
      for (const r of rs) {
        assert.equal(r.res?.ok, true, `resend ${r.id}: ${r.err?.message ?? JSON.stringify(r.res)}`);
        assert.equal(r.res.duplicate, storedIds.has(`writer${i}/${r.id}`), `resend ${r.id} duplicate`);
      }
    }
    const all = await fullHistory(reader, 'midburst');
    assert.deepEqual(seqs(all), range(1, 4 * N));
    assert.equal(new Set(all.map((m) => `${m.user}/${m.id}`)).size, 4 * N, 'each message once');
  });

  it('after kill -9 and restart a client re-joins with since and gets everything it missed', T, async (t) => {
    const srv = await startChatd({ ...FAST, 'history-window': 10 }, { t });
    const bob = await chat(t, srv, 'bob');
    await bob.ok('room:create', { room: 'reconnect' });
    await bob.ok('room:join', { room: 'reconnect' });
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.polling });
    await alice.ok('room:join', { room: 'reconnect' });

    const part1 = (await sendMany(bob, 'reconnect', 30)).map((r) => r.res.message);
    await alice.events.message.waitFor((m) => m.seq === 30);
    // alice stops listening (she is busy); bob writes 40 more; then chatd crashes.
    alice.close();
    const part2 = (await sendMany(bob, 'reconnect', 40)).map((r) => r.res.message);
    const bobGone = nextEvent(bob.socket, 'disconnect');
    assert.equal((await srv.kill('SIGKILL')).signal, 'SIGKILL');
    await bobGone;

    await srv.restart();
    const seen = alice.events.message.filter((m) => m.room === 'reconnect');
    const since = seen.at(-1).seq;
    const back = await chat(t, srv, 'alice', { token: alice.token, transport: TRANSPORTS.polling });
    assert.equal(back.token, alice.token, 'the token is honoured (the name was free)');
    const j = await back.ok('room:join', { room: 'reconnect', since });
    assertSame([...seen, ...j.messages], [...part1, ...part2], 'seen + caught up = everything, once');
  });
});

describe('chatd SIGTERM', () => {
  it('clients see a disconnect, chatd exits 0, acknowledged messages are kept', T, async (t) => {
    const srv = await startChatd(FAST, { t });
    const ws = await chat(t, srv, 'wendy', { transport: TRANSPORTS.websocket });
    const poll = await chat(t, srv, 'paul', { transport: TRANSPORTS.polling });
    const dflt = await chat(t, srv, 'dora');
    await ws.ok('room:create', { room: 'term' });
    for (const c of [ws, poll, dflt]) await c.ok('room:join', { room: 'term' });
    const disconnects = [ws, poll, dflt].map((c) => nextEvent(c.socket, 'disconnect', { ms: 15000 }));
    // The WebSocket client is told why before its connection closes.
    const notice = nextEvent(ws.socket, 'shutdown', { ms: 15000, failOn: ['disconnect'] });

    let stopping = null;
    const results = await sendMany(ws, 'term', 60, {
      onAck: (_e, acked) => {
        if (acked === 25) stopping = srv.kill('SIGTERM', 15000);
      },
    });
    const exit = await stopping;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; stderr:\n${srv.stderr()}`);
    const [why] = await notice;
    assert.deepEqual(why, { reason: 'server shutting down' });
    const reasons = (await Promise.all(disconnects)).map(([reason]) => reason);
    for (const r of reasons) {
      assert.ok(['io server disconnect', 'transport close', 'transport error'].includes(r), `disconnect reason ${r}`);
    }
    const acked = results.filter((r) => r.res?.ok).map((r) => r.res.message);
    assert.ok(acked.length >= 25, `acked ${acked.length}`);
    // Commands that were not acknowledged as stored failed (ack error, timeout or disconnect).
    for (const r of results) assert.ok(r.res?.ok || r.err || r.res?.error?.code === 'unavailable', JSON.stringify(r.res));

    await srv.restart();
    const again = await chat(t, srv, 'wendy');
    const kept = await fullHistory(again, 'term');
    assertSame(kept.slice(0, acked.length), acked, 'acknowledged messages kept');
    assert.deepEqual(seqs(kept), range(1, kept.length));
  });
});

describe('chatd connection state recovery across a restart', () => {
  it('the client gets its socket back (same id, rooms) and every event it missed', T, async (t) => {
    const srv = await startChatd(FAST, { t });
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.websocket });
    await alice.ok('room:create', { room: 'durable' });
    await alice.ok('room:join', { room: 'durable' });
    await bob.ok('room:join', { room: 'durable' });
    // Alice receives an event, so her client holds a recovery offset.
    const before = await bob.send('durable', 'before the restart');
    await alice.events.message.waitFor((m) => m.id === before.id);
    const oldId = alice.id;
    const gone = nextEvent(alice.socket, 'disconnect', { ms: 15000 });
    assert.deepEqual(await srv.kill('SIGTERM'), { code: 0, signal: null });
    await gone;
    bob.close();

    await srv.restart({ samePort: true });
    // While alice is away, someone writes to her room.
    const carol = await chat(t, srv, 'carol', { transport: TRANSPORTS.websocket });
    await carol.ok('room:join', { room: 'durable' });
    const missed = await carol.send('durable', 'while you were away');

    alice.socket.connect();
    await nextEvent(alice.socket, 'connect', { ms: 15000, failOn: ['connect_error'] });
    assert.equal(alice.socket.recovered, true, 'recovered');
    assert.equal(alice.id, oldId, 'same socket id');
    const got = await alice.events.message.waitFor((m) => m.id === missed.id);
    assert.equal(got.text, 'while you were away');
    // Still a member of the room without joining again: live messages keep coming.
    const live = await carol.send('durable', 'live');
    await alice.events.message.waitFor((m) => m.id === live.id);
    assert.equal(alice.events.message.count((m) => m.id === missed.id), 1, 'missed event once');
    assert.deepEqual(alice.problems(), []);
  });
});
