// chatd end-to-end: history paging (`history` with before/cursor/more), `room:join` with and
// without `since`, and catching up after a reconnect: with `since` (a new connection), or by
// connection state recovery (the same socket back). docs/protocol.md, "Reconnecting without
// gaps".
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, expectError, seqs, range, sendMany, fullHistory, nextEvent,
  connected, elapse, catchUp,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
// A small in-memory window, so that catch-ups older than it come from the store.
const WINDOW = 20;

/** The stored message objects of a burst, in send order (every ack must be ok). */
function stored(results) {
  return results.map((r) => {
    assert.ok(r.res?.ok, `message ${r.i}: ${r.err?.message ?? JSON.stringify(r.res)}`);
    assert.equal(r.res.duplicate, false);
    return r.res.message;
  });
}

const FAST = { 'message-rate': 10000, 'message-burst': 10000 };

describe('chatd history (default settings)', () => {
  let srv;
  before(async () => { srv = await startChatd(FAST); });
  after(async () => { await srv?.close(); });

  it('history pages back with before / cursor / more, oldest first', T, async (t) => {
    const alice = await chat(t, srv, 'hal');
    await alice.ok('room:create', { room: 'paging' });
    assert.deepEqual(await alice.ok('history', { room: 'paging' }), { ok: true, messages: [], cursor: null, more: false });
    await alice.ok('room:join', { room: 'paging' });
    const sent = stored(await sendMany(alice, 'paging', 120));
    assert.deepEqual(seqs(sent), range(1, 120), 'one connection\'s commands are handled in order');

    const p1 = await alice.ok('history', { room: 'paging' });
    assert.deepEqual(p1.messages, sent.slice(70), 'default: the 50 newest');
    assert.equal(p1.cursor, 71);
    assert.equal(p1.more, true);
    const p2 = await alice.ok('history', { room: 'paging', before: p1.cursor });
    assert.deepEqual(seqs(p2.messages), range(21, 70));
    assert.equal(p2.cursor, 21);
    assert.equal(p2.more, true);
    const p3 = await alice.ok('history', { room: 'PAGING', before: p2.cursor });
    assert.deepEqual(p3.messages, sent.slice(0, 20));
    assert.equal(p3.cursor, 1);
    assert.equal(p3.more, false);
    const p4 = await alice.ok('history', { room: 'paging', before: 1 });
    assert.deepEqual(p4, { ok: true, messages: [], cursor: null, more: false });

    // limit: at most 100; an exact fit down to seq 1 has no more.
    const big = await alice.ok('history', { room: 'paging', limit: 1000 });
    assert.deepEqual(seqs(big.messages), range(21, 120));
    assert.equal(big.more, true);
    const exact = await alice.ok('history', { room: 'paging', before: 11, limit: 10 });
    assert.deepEqual(seqs(exact.messages), range(1, 10));
    assert.equal(exact.more, false);
    const mid = await alice.ok('history', { room: 'paging', before: 61, limit: 7 });
    assert.deepEqual(mid.messages, sent.slice(53, 60));
    assert.equal(mid.cursor, 54);
    assert.equal(mid.more, true);
    // Paging to the start gets every message exactly once.
    assert.deepEqual(await fullHistory(alice, 'paging'), sent);

    // Errors.
    expectError(await alice.ask('history', { room: 'nope' }), 'no_such_room', 'unknown room');
    for (const bad of [{ room: 'paging', before: 'x' }, { room: 'paging', limit: -1 }, { room: 'paging', limit: 'ten' }, { before: 3 }, 'paging']) {
      expectError(await alice.ask('history', bad), 'bad_request', `history ${JSON.stringify(bad)}`);
    }
  });

  it('room:join: the latest 50 without since, every message after since', T, async (t) => {
    const writer = await chat(t, srv, 'wanda');
    await writer.ok('room:create', { room: 'joining' });
    await writer.ok('room:join', { room: 'joining' });
    const N = 120;
    const sent = stored(await sendMany(writer, 'joining', N));

    const reader = await chat(t, srv, 'rita', { transport: TRANSPORTS.polling });
    const latest = await reader.ok('room:join', { room: 'joining' });
    assert.deepEqual(latest.messages, sent.slice(N - 50));
    assert.equal(latest.cursor, N - 49);
    assert.equal(latest.last_seq, N);
    // The cursor continues with `history`.
    const older = await reader.ok('history', { room: 'joining', before: latest.cursor });
    assert.deepEqual(seqs(older.messages), range(N - 99, N - 50));

    // `since`: the messages after it, however old, a page (100) at a time; `history` with
    // `after` continues. (Beyond the in-memory window: below.)
    for (const since of [0, 1, 5, 19, 20, 21, 69, 70, 71, 100, 119, 120, 500]) {
      const j = await reader.ok('room:join', { room: 'joining', since });
      assert.deepEqual(j.messages, sent.slice(Math.min(since, N), since + 100), `since ${since}`);
      assert.equal(j.more, since + 100 < N, `more for since ${since}`);
      assert.equal(j.last_seq, N);
      if (since < N) assert.equal(j.cursor, since + 1, `cursor for since ${since}`);
      const all = await catchUp(reader, 'joining', since);
      assert.deepEqual(all.messages, sent.slice(Math.min(since, N)), `catch-up from ${since}`);
    }
    expectError(await reader.ask('room:join', { room: 'joining', since: -1 }), 'bad_request', 'since -1');
    expectError(await reader.ask('room:join', { room: 'joining', since: 'x' }), 'bad_request', 'since x');
  });

});

describe('chatd history-like replies are capped in count and bytes', () => {
  // docs/protocol.md: at most 100 messages and 256 KiB of messages (as JSON) per reply.
  const CAP_BYTES = 256 * 1024;
  const ENVELOPE = 1024; // the reply's other fields
  let srv;
  before(async () => { srv = await startChatd(FAST); });
  after(async () => { await srv?.close(); });

  const size = (reply) => Buffer.byteLength(JSON.stringify(reply));
  const checkCaps = (replies, what) => {
    for (const [i, r] of replies.entries()) {
      assert.ok(r.messages.length <= 100, `${what} reply ${i}: ${r.messages.length} messages`);
      assert.ok(size(r) <= CAP_BYTES + ENVELOPE, `${what} reply ${i}: ${size(r)} bytes`);
    }
  };

  it('several MB of history: every reply under the cap; continuations yield each message once, in order', { timeout: 120000 }, async (t) => {
    const writer = await chat(t, srv, 'hugo', { transport: TRANSPORTS.websocket });
    await writer.ok('room:create', { room: 'big' });
    await writer.ok('room:join', { room: 'big' });
    const N = 1500; // 1500 messages of 4000 bytes: 6 MB
    const text = (i) => `${String(i).padStart(6, '0')} ${'é'.repeat(1996)} \t"`;
    const sent = stored(await sendMany(writer, 'big', N, { text, ms: 90000 }));
    assert.ok(sent.every((m) => Buffer.byteLength(m.text) <= 4096));

    const reader = await chat(t, srv, 'rhea', { transport: TRANSPORTS.polling });
    for (const since of [0, 777, N - 1]) {
      const all = await catchUp(reader, 'big', since);
      checkCaps(all.replies, `catch-up from ${since}`);
      assert.deepEqual(seqs(all.messages), range(since + 1, N), `catch-up from ${since}`);
      assert.deepEqual(all.messages, sent.slice(since));
      if (N - since > 100) assert.ok(all.replies.length > (N - since) / 100, 'the byte cap cut pages short');
    }
    // Backwards: `history` without `before`, then from each cursor.
    const pages = [];
    let before;
    for (;;) {
      const page = await reader.ok('history', { room: 'big', limit: 100, ...(before ? { before } : {}) });
      pages.push(page);
      if (!page.more) break;
      before = page.cursor;
    }
    checkCaps(pages, 'history back');
    assert.deepEqual(pages.reverse().flatMap((p) => p.messages), sent);
    // The latest messages of a join without `since` fit the cap too.
    const latest = await reader.ok('room:join', { room: 'big' });
    checkCaps([latest], 'join');
    assert.deepEqual(latest.messages, sent.slice(N - latest.messages.length));
    expectError(await reader.ask('history', { room: 'big', before: 5, after: 1 }), 'bad_request', 'before and after');
  });

  it('dm:history pages are capped both ways too', { timeout: 60000 }, async (t) => {
    const a = await chat(t, srv, 'dmwriter', { transport: TRANSPORTS.websocket });
    const b = await chat(t, srv, 'dmreader', { transport: TRANSPORTS.websocket });
    const N = 150;
    const results = [];
    for (let i = 0; i < N; i++) {
      const res = await a.ok('dm:send', { to: 'dmreader', id: `dm-${i}`, text: `${i} ${'x'.repeat(4000)}` });
      results.push(res.message);
    }
    const forward = [];
    let after = 0;
    for (;;) {
      const page = await b.ok('dm:history', { with: 'dmwriter', after, limit: 100 });
      forward.push(page);
      if (!page.more) break;
      after = page.messages.at(-1).seq;
    }
    checkCaps(forward, 'dm forward');
    assert.ok(forward.length >= 3);
    assert.deepEqual(forward.flatMap((p) => p.messages), results);
    const back = [];
    let before;
    for (;;) {
      const page = await b.ok('dm:history', { with: 'dmwriter', limit: 100, ...(before ? { before } : {}) });
      back.push(page);
      if (!page.more) break;
      before = page.cursor;
    }
    checkCaps(back, 'dm back');
    assert.deepEqual(back.reverse().flatMap((p) => p.messages), results);
  });
});

describe('chatd catch-up after a reconnect (small in-memory window)', () => {
  let srv;
  before(async () => { srv = await startChatd({ ...FAST, 'history-window': WINDOW }); });
  after(async () => { await srv?.close(); });

  it('a client that reconnects and re-joins with since gets everything after it: no gap, no duplicate', T, async (t) => {
    const bob = await chat(t, srv, 'bobby');
    await bob.ok('room:create', { room: 'catchup' });
    await bob.ok('room:join', { room: 'catchup' });
    const alice = await chat(t, srv, 'alicia', { transport: TRANSPORTS.polling });
    await alice.ok('room:join', { room: 'catchup' });

    const first = stored(await sendMany(bob, 'catchup', 10));
    await alice.events.message.waitCount((m) => m.room === 'catchup', 10);
    const seen = alice.events.message.filter((m) => m.room === 'catchup');
    assert.deepEqual(seen, first);
    const lastSeen = seen.at(-1).seq;

    // alice goes away (no recovery: a client-side disconnect); bob writes on, past the window.
    alice.close();
    const missed = stored(await sendMany(bob, 'catchup', WINDOW + 15));

    // alice comes back as a new connection with her token and re-joins with `since`, while bob
    // keeps writing: live messages and the join's ack merge by seq into one gapless sequence.
    const again = await chat(t, srv, 'alicia', { token: alice.token, transport: TRANSPORTS.polling });
    assert.equal(again.user, 'alicia');
    const live = sendMany(bob, 'catchup', 20);
    const j = await again.ok('room:join', { room: 'catchup', since: lastSeen });
    const more = stored(await live);
    const all = [...first, ...missed, ...more];
    await again.events.message.waitFor((m) => m.seq === all.at(-1).seq);

    const fromAck = j.messages;
    const fromLive = again.events.message.filter((m) => m.room === 'catchup');
    assert.deepEqual(seqs(fromAck), range(lastSeen + 1, j.last_seq), 'the ack: contiguous from since+1 to last_seq');
    assert.deepEqual(seqs(fromLive), range(j.last_seq + 1, all.at(-1).seq), 'live: everything after last_seq, once each');
    assert.deepEqual([...fromAck, ...fromLive], all.slice(lastSeen));
  });

  it('several senders at once: live messages arrive in seq order; every since catches up without gap', T, async (t) => {
    const alice = await chat(t, srv, 'observer', { transport: TRANSPORTS.websocket });
    await alice.ok('room:create', { room: 'busy' });
    await alice.ok('room:join', { room: 'busy' });
    const writers = [];
    for (let i = 0; i < 4; i++) {
      const w = await chat(t, srv, `writer${i}`, { transport: i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket });
      await w.ok('room:join', { room: 'busy' });
      writers.push(w);
    }
    // Concurrent senders: their messages are committed together, in batches.
    const sent = (await Promise.all(writers.map((w) => sendMany(w, 'busy', 25)))).flat().map((r) => r.res.message);
    const bySeq = [...sent].sort((x, y) => x.seq - y.seq);
    assert.deepEqual(seqs(bySeq), range(1, 100));
    await alice.events.message.waitCount(() => true, 100);
    assert.deepEqual(seqs(alice.events.message.all), range(1, 100), 'live messages in seq order');
    // A reader catching up from any point gets exactly what follows, in order.
    const reader = await chat(t, srv, 'late-reader', { transport: TRANSPORTS.websocket });
    for (let since = 0; since <= 100; since++) {
      const j = await reader.ok('room:join', { room: 'busy', since });
      assert.deepEqual(j.messages, bySeq.slice(since), `room:join since ${since}`);
    }
    // Without since: the latest 50, even though the window holds only the latest 20.
    const latest = await reader.ok('room:join', { room: 'busy' });
    assert.deepEqual(latest.messages, bySeq.slice(100 - 50));
    assert.equal(latest.cursor, 51);
  });

  it('a dropped connection is recovered with every missed message, in order, once', T, async (t) => {
    const bob = await chat(t, srv, 'robert');
    await bob.ok('room:create', { room: 'recover' });
    await bob.ok('room:join', { room: 'recover' });
    const alice = await chat(t, srv, 'alison', { transport: TRANSPORTS.websocket });
    await alice.ok('room:join', { room: 'recover' });
    const first = stored(await sendMany(bob, 'recover', 5));
    await alice.events.message.waitCount((m) => m.room === 'recover', 5);

    // The transport drops (not a client-side disconnect): the stock client may recover.
    const d = nextEvent(alice.socket, 'disconnect');
    alice.socket.io.engine.close();
    assert.equal((await d)[0], 'forced close');
    // bob writes while alice is away; his acks mean the messages were broadcast (and kept for
    // recovery) before alice comes back.
    const missed = stored(await sendMany(bob, 'recover', 8));
    alice.socket.connect();
    await connected(alice.socket);
    assert.equal(alice.socket.recovered, true, 'connection state recovered');
    await alice.events.message.waitFor((m) => m.seq === missed.at(-1).seq);
    // Still a member without re-joining: live messages arrive, and alice can send.
    const after = await bob.send('recover', 'after recovery');
    await alice.events.message.waitFor((m) => m.id === after.id);
    const mine = await alice.send('recover', 'i am back');
    await bob.events.message.waitFor((m) => m.id === mine.id);
    assert.deepEqual(alice.events.message.filter((m) => m.room === 'recover'), [...first, ...missed, after]);
    assert.deepEqual(alice.problems(), []);
  });
});

describe('chatd room:join without since, window smaller than 50 (--history-window 5)', () => {
  let srv;
  before(async () => { srv = await startChatd({ ...FAST, 'history-window': 5 }); });
  after(async () => { await srv?.close(); });

  it('a second user joining gets every message up to the latest 50, in order, not just the window', T, async (t) => {
    const alice = await chat(t, srv, 'amy');
    await alice.ok('room:create', { room: 'tiny' });
    await alice.ok('room:join', { room: 'tiny' });
    const sent = stored(await sendMany(alice, 'tiny', 12));
    assert.deepEqual(seqs(sent), range(1, 12));

    const bob = await chat(t, srv, 'ben', { transport: TRANSPORTS.polling });
    const j = await bob.ok('room:join', { room: 'tiny' });
    assert.deepEqual(j.messages, sent, 'all 12 (≤ 50), oldest first');
    assert.equal(j.cursor, 1);
    assert.equal(j.last_seq, 12);
    assert.deepEqual(j.members, ['amy', 'ben']);

    // Past 50: exactly the latest 50; and the same from a fresh room actor after a restart
    // (SQLite: the window is reloaded, the rest read from the database).
    sent.push(...stored(await sendMany(alice, 'tiny', 48)));
    const carol = await chat(t, srv, 'cleo', { transport: TRANSPORTS.websocket });
    const latest = await carol.ok('room:join', { room: 'tiny' });
    assert.deepEqual(latest.messages, sent.slice(10));
    assert.equal(latest.cursor, 11);
    assert.equal(latest.last_seq, 60);
    alice.close(); bob.close(); carol.close();
    await srv.restart();
    const dave = await chat(t, srv, 'dora');
    const again = await dave.ok('room:join', { room: 'tiny' });
    assert.deepEqual(again.messages, sent.slice(10));
    assert.equal(again.cursor, 11);
  });
});

describe('chatd room actors stop when idle and come back from the store', () => {
  const IDLE_MS = 200;
  let srv;
  before(async () => { srv = await startChatd({ ...FAST, 'room-idle-ms': IDLE_MS }); });
  after(async () => { await srv?.close(); });

  it('an idle room stops (--room-idle-ms) and is reloaded with its history and sequence', T, async (t) => {
    const ivy = await chat(t, srv, 'ivy');
    await ivy.ok('room:create', { room: 'sleepy', topic: 'zzz' });
    await ivy.ok('room:join', { room: 'sleepy' });
    const sent = stored(await sendMany(ivy, 'sleepy', 5));
    assert.equal((await srv.metrics()).get('chatd_rooms'), 1, 'one running room actor');
    await ivy.ok('room:leave', { room: 'sleepy' });
    // Wait out the idle timer (what this test is about), with margin.
    await elapse(IDLE_MS * 3);
    assert.equal((await srv.metrics()).get('chatd_rooms'), 0, 'the idle room stopped');

    const back = await ivy.ok('room:join', { room: 'sleepy', since: 2 });
    assert.deepEqual(back.room, { name: 'sleepy', topic: 'zzz' });
    assert.deepEqual(back.messages, sent.slice(2));
    assert.equal(back.last_seq, 5);
    const next = await ivy.send('sleepy', 'awake');
    assert.equal(next.seq, 6, 'the sequence continues');
    assert.deepEqual(await fullHistory(ivy, 'sleepy'), [...sent, next]);
  });
});
