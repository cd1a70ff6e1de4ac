// chatd end-to-end: direct messages (`dm:send`, `dm` events to every tab but the sending one,
// `dm:history`) and resend de-duplication by client message id (docs/protocol.md).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, barrier, expectError, nextId, seqs, range, fullHistory, elapse,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const GRACE = 300;

describe('chatd direct messages', () => {
  let srv;
  before(async () => {
    srv = await startChatd({ 'presence-grace-ms': GRACE, 'message-rate': 1000, 'message-burst': 1000 });
  });
  after(async () => { await srv?.close(); });

  it('a dm reaches both tabs of the recipient and the sender\'s other tab, not the sending tab', T, async (t) => {
    const a1 = await chat(t, srv, 'Alice', { transport: TRANSPORTS.websocket });
    const a2 = await chat(t, srv, 'alice', { token: a1.token, transport: TRANSPORTS.polling });
    const b1 = await chat(t, srv, 'bob');
    const b2 = await chat(t, srv, 'BOB', { token: b1.token, transport: TRANSPORTS.polling });
    const eve = await chat(t, srv, 'eve', { transport: TRANSPORTS.websocket });

    const id = nextId('dm');
    const res = await a1.ok('dm:send', { to: 'Bob', id, text: 'psst, bob' });
    assert.equal(res.duplicate, false);
    const m = res.message;
    assert.equal(m.room, '@alice:bob', 'the two names lowercased and sorted');
    assert.equal(m.user, 'Alice');
    assert.equal(m.id, id);
    assert.equal(m.text, 'psst, bob');
    assert.equal(m.seq, 1);
    for (const c of [b1, b2, a2]) assert.deepEqual(await c.events.dm.waitFor((x) => x.id === id), m);

    // bob answers from tab 1: alice's two tabs get it, bob's tab 2 too, not tab 1.
    const reply = (await b1.ok('dm:send', { to: 'alice', id: nextId('dm'), text: 'hi alice' })).message;
    assert.equal(reply.room, '@alice:bob');
    assert.equal(reply.seq, 2);
    for (const c of [a1, a2, b2]) assert.deepEqual(await c.events.dm.waitFor((x) => x.id === reply.id), reply);
    // a1's stream has bob's reply and nothing before it: its own dm was not echoed to it.
    assert.deepEqual(a1.events.dm.all, [reply]);
    const r2 = (await a1.ok('dm:send', { to: 'bob', id: nextId('dm'), text: 'again' })).message;
    await b1.events.dm.waitFor((x) => x.id === r2.id);
    assert.deepEqual(b1.events.dm.all, [m, r2], 'b1 did not get its own reply');
    // No one else hears it; direct conversations are not rooms.
    await eve.ok('dm:send', { to: 'alice', id: nextId('dm'), text: 'hello from eve' });
    await a1.events.dm.waitFor((x) => x.user === 'eve');
    assert.equal(eve.events.dm.count((x) => x.room === '@alice:bob'), 0);
    assert.equal(eve.events.message.length, 0);
    expectError(await eve.ask('room:join', { room: '@alice:bob' }), 'invalid_room_name', 'joining a dm');
    expectError(await eve.ask('history', { room: '@alice:bob' }), 'invalid_room_name', 'history of a dm');
    const list = await eve.ok('rooms:list', {});
    assert.ok(list.rooms.every((r) => !r.name.startsWith('@')));

    // dm:history, from both sides.
    const hb = await b2.ok('dm:history', { with: 'alice' });
    assert.equal(hb.with, 'alice');
    assert.equal(hb.room, '@alice:bob');
    assert.deepEqual(hb.messages, [m, reply, r2]);
    assert.equal(hb.cursor, 1);
    assert.equal(hb.more, false);
    const ha = await a1.ok('dm:history', { with: 'bob' });
    assert.equal(ha.room, '@alice:bob');
    assert.deepEqual(ha.messages, [m, reply, r2]);
    const he = await eve.ok('dm:history', { with: 'bob' });
    assert.deepEqual(he.messages, [], 'eve and bob have no conversation');
    assert.equal(he.room, '@bob:eve');
  });

  it('dm:history pages back with before / cursor / more', T, async (t) => {
    const c = await chat(t, srv, 'carol');
    const d = await chat(t, srv, 'dave', { transport: TRANSPORTS.polling });
    const sent = [];
    for (let i = 0; i < 12; i++) {
      const [from, to] = i % 3 ? [c, 'dave'] : [d, 'carol'];
      sent.push((await from.ok('dm:send', { to, id: `p${i}`, text: `page ${i}` })).message);
    }
    assert.deepEqual(seqs(sent), range(1, 12));
    const p1 = await c.ok('dm:history', { with: 'dave', limit: 5 });
    assert.deepEqual(p1.messages, sent.slice(7));
    assert.equal(p1.cursor, 8);
    assert.equal(p1.more, true);
    const p2 = await c.ok('dm:history', { with: 'dave', limit: 5, before: p1.cursor });
    assert.deepEqual(p2.messages, sent.slice(2, 7));
    const p3 = await c.ok('dm:history', { with: 'DAVE', limit: 5, before: p2.cursor });
    assert.deepEqual(p3.messages, sent.slice(0, 2));
    assert.equal(p3.more, false);
    assert.deepEqual(await fullHistory(d, 'carol', { event: 'dm:history', key: 'with' }), sent);
  });

  it('errors; offline recipients: only with an earlier conversation', T, async (t) => {
    const ann = await chat(t, srv, 'ann');
    expectError(await ann.ask('dm:send', { to: 'nobody', id: nextId(), text: 'hello?' }), 'unknown_user', 'never seen');
    expectError(await ann.ask('dm:send', { to: 'ANN', id: nextId(), text: 'me' }), 'unknown_user', 'to oneself');
    const ben = await chat(t, srv, 'ben', { transport: TRANSPORTS.polling });
    const cid = await chat(t, srv, 'cid', { transport: TRANSPORTS.polling });
    expectError(await ann.ask('dm:send', { to: 'ben', id: nextId(), text: '   ' }), 'empty_message', 'blank');
    expectError(await ann.ask('dm:send', { to: 'ben', id: nextId(), text: 'x'.repeat(4097) }), 'too_long', 'over 4096 bytes');
    for (const bad of [{ to: 'ben', text: 'no id' }, { to: 'ben', id: nextId() }, { id: nextId(), text: 'no to' },
      { to: 'ben', id: 7, text: 'x' }, { to: 'ben', id: '', text: 'x' }, 'ben', null]) {
      expectError(await ann.ask('dm:send', bad), 'bad_request', `dm:send ${JSON.stringify(bad)}`);
    }
    const r = await ann.ask('dm:send', { to: 'b e n', id: nextId(), text: 'x' });
    assert.ok(['invalid_name', 'unknown_user'].includes(r.error?.code), JSON.stringify(r));
    expectError(await ann.ask('dm:history', {}), 'bad_request', 'dm:history without with');

    // ann and ben talk; then ben and cid go offline. Once the grace period is over, cid (no
    // conversation with ann) is unknown, ben (a conversation) still gets messages, kept for him.
    const first = (await ann.ok('dm:send', { to: 'ben', id: nextId(), text: 'hello ben' })).message;
    await ben.events.dm.waitFor((x) => x.id === first.id);
    ben.close();
    cid.close();
    await elapse(GRACE * 3);
    expectError(await ann.ask('dm:send', { to: 'cid', id: nextId(), text: 'are you there?' }), 'unknown_user', 'offline, no conversation');
    const later = (await ann.ok('dm:send', { to: 'ben', id: nextId(), text: 'for when you are back' })).message;
    const back = await chat(t, srv, 'ben');
    const h = await back.ok('dm:history', { with: 'ann' });
    assert.deepEqual(h.messages, [first, later]);
  });
});

describe('chatd resend de-duplication', () => {
  let srv;
  before(async () => { srv = await startChatd({ 'message-rate': 1000, 'message-burst': 1000 }); });
  after(async () => { await srv?.close(); });

  it('the same id twice: one stored message, the second ack says duplicate, no second broadcast', T, async (t) => {
    const alice = await chat(t, srv, 'alice');
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    const bob2 = await chat(t, srv, 'bob', { token: bob.token, transport: TRANSPORTS.websocket });
    await alice.ok('room:create', { room: 'dedupe' });
    for (const c of [alice, bob, bob2]) await c.ok('room:join', { room: 'dedupe' });

    const id = nextId('dup');
    const first = await alice.ok('message:send', { room: 'dedupe', id, text: 'only once' });
    assert.equal(first.duplicate, false);
    const second = await alice.ok('message:send', { room: 'dedupe', id, text: 'only once' });
    assert.equal(second.duplicate, true);
    assert.deepEqual(second.message, first.message, 'the original message comes back');
    // Even with another text, a resend is the original.
    const third = await alice.ok('message:send', { room: 'dedupe', id, text: 'edited?' });
    assert.equal(third.duplicate, true);
    assert.deepEqual(third.message, first.message);
    // Pipelined resends (a retry racing the original) are de-duplicated too.
    const id2 = nextId('dup');
    const racing = await Promise.all([1, 2, 3].map(() => alice.ask('message:send', { room: 'dedupe', id: id2, text: 'racing' })));
    assert.deepEqual(racing.map((r) => r.duplicate), [false, true, true]);
    assert.equal(new Set(racing.map((r) => r.message.seq)).size, 1);

    // The same id from another user, or in another room, is another message.
    const other = await bob.ok('message:send', { room: 'dedupe', id, text: 'bob\'s own' });
    assert.equal(other.duplicate, false);
    assert.notEqual(other.message.seq, first.message.seq);
    await alice.ok('room:join', { room: 'lobby' });
    const elsewhere = await alice.ok('message:send', { room: 'lobby', id, text: 'in lobby' });
    assert.equal(elsewhere.duplicate, false);
    // A resend from another tab of the same user, or after reconnecting, is still a duplicate.
    const fromTab2 = await bob2.ok('message:send', { room: 'dedupe', id, text: 'bob\'s own' });
    assert.equal(fromTab2.duplicate, true);
    assert.deepEqual(fromTab2.message, other.message);
    alice.close();
    const alice2 = await chat(t, srv, 'alice', { token: alice.token });
    await alice2.ok('room:join', { room: 'dedupe' });
    const afterReconnect = await alice2.ok('message:send', { room: 'dedupe', id, text: 'only once' });
    assert.equal(afterReconnect.duplicate, true);
    assert.deepEqual(afterReconnect.message, first.message);

    // Everything is behind this barrier: each message was broadcast once.
    await barrier(alice2, 'dedupe', [bob, bob2]);
    for (const c of [bob, bob2]) {
      assert.equal(c.events.message.count((m) => m.id === id && m.user === 'alice'), 1, 'one broadcast of the first message');
      assert.equal(c.events.message.count((m) => m.id === id2), 1, 'one broadcast of the racing message');
    }
    assert.equal(bob.events.message.count((m) => m.id === id && m.user === 'bob'), 0, 'not to the sending tab');
    assert.equal(bob2.events.message.count((m) => m.id === id && m.user === 'bob'), 1, 'bob\'s other tab, once');
    const stored = await fullHistory(alice2, 'dedupe');
    assert.deepEqual(stored.map((m) => [m.user, m.id]), [['alice', id], ['alice', id2], ['bob', id], ['alice', stored.at(-1).id]]);
  });

  it('dm resends are de-duplicated the same way', T, async (t) => {
    const x = await chat(t, srv, 'xena');
    const y = await chat(t, srv, 'yann', { transport: TRANSPORTS.polling });
    const id = nextId('dmdup');
    const a = await x.ok('dm:send', { to: 'yann', id, text: 'once' });
    const b = await x.ok('dm:send', { to: 'yann', id, text: 'once' });
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.deepEqual(b.message, a.message);
    const marker = (await x.ok('dm:send', { to: 'yann', id: nextId('dmdup'), text: 'marker' })).message;
    await y.events.dm.waitFor((m) => m.id === marker.id);
    assert.deepEqual(y.events.dm.all, [a.message, marker]);
    assert.equal((await srv.metrics()).get('chatd_direct_messages_total'), 2, 'a duplicate is not counted');
  });
});
