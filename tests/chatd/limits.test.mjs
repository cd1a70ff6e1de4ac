// chatd end-to-end: the per-connection rate limit, rooms per user, and bad payloads: each gets
// its documented error ack, the connection stays usable, and other clients carry on undisturbed
// (docs/protocol.md, "Commands" and "Error codes").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Socket as EngineSocket } from 'engine.io-client';
import {
  startChatd, chat, TRANSPORTS, expectError, nextId, seqs, range, elapse, sendMany, nextEvent,
  socketFor, connected, Recorder, barrier, WAIT_MS,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };

describe('chatd rate limit', () => {
  const RATE = 1; // --message-rate: one command a second
  const BURST = 6; // --message-burst
  let srv;
  before(async () => {
    srv = await startChatd({ 'message-rate': RATE, 'message-burst': BURST, 'max-rooms-per-user': 2 });
  });
  after(async () => { await srv?.close(); });

  it('a burst, then rate_limited acks, then recovery after the refill; others unaffected', T, async (t) => {
    const alice = await chat(t, srv, 'alice');
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    await bob.ok('room:join', { room: 'lobby' });
    await alice.ok('room:join', { room: 'lobby' }); // limited: one token of the burst
    const results = (await sendMany(alice, 'lobby', 10)).map((r) => r.res);
    const oks = results.filter((r) => r.ok).length;
    // BURST - 1 tokens were left (a refill during these few milliseconds is a tiny fraction).
    assert.equal(oks, BURST - 1, JSON.stringify(results.map((r) => r.ok || r.error.code)));
    assert.ok(results.slice(0, oks).every((r) => r.ok));
    for (const r of results.slice(oks)) expectError(r, 'rate_limited', 'over the burst');
    // Only what was accepted was broadcast.
    const accepted = results.slice(0, oks).map((r) => r.message);
    await bob.events.message.waitFor((m) => m.id === accepted.at(-1).id);
    assert.deepEqual(bob.events.message.all, accepted);

    // Another connection is not limited.
    const fromBob = await bob.send('lobby', 'bob is not limited');
    await alice.events.message.waitFor((m) => m.id === fromBob.id);
    // Every command costs something: all are refused while the bucket is empty.
    expectError(await alice.ask('history', { room: 'lobby' }), 'rate_limited', 'history');
    expectError(await alice.ask('room:create', { room: 'later' }), 'rate_limited', 'room:create');
    expectError(await alice.ask('rooms:list', {}), 'rate_limited', 'rooms:list');
    expectError(await alice.ask('typing', { room: 'lobby', typing: true }), 'rate_limited', 'typing');

    // The refill: one token per 1/RATE s (waiting it out is what is tested here).
    await elapse(1000 / RATE + 100);
    const again = await alice.send('lobby', 'after the refill');
    assert.equal(again.user, 'alice');
    expectError(await alice.ask('message:send', { room: 'lobby', id: nextId(), text: 'too soon' }), 'rate_limited', 'right after');
    assert.ok(alice.socket.connected);
  });

  it('--max-rooms-per-user: too_many_rooms, until the user leaves one', T, async (t) => {
    const carol = await chat(t, srv, 'carol');
    await carol.ok('room:join', { room: 'lobby' });
    const dave = await chat(t, srv, 'dave');
    await dave.ok('room:create', { room: 'second' });
    await dave.ok('room:create', { room: 'third' });
    await carol.ok('room:join', { room: 'second' });
    expectError(await carol.ask('room:join', { room: 'third' }), 'too_many_rooms', 'a third room');
    await carol.ok('room:join', { room: 'second' }); // re-joining a room she is in is fine
    await carol.ok('room:leave', { room: 'lobby' });
    await carol.ok('room:join', { room: 'third' });
  });
});

describe('chatd bad payloads', () => {
  const MAX = 100; // --max-message-bytes
  let srv;
  before(async () => {
    srv = await startChatd({ 'max-message-bytes': MAX, 'message-rate': 10000, 'message-burst': 10000 });
  });
  after(async () => { await srv?.close(); });

  it('wrong types, missing fields, over-long strings, unknown rooms and events, non-objects, binary: documented error acks', T, async (t) => {
    const g = await chat(t, srv, 'garbage');
    const peer = await chat(t, srv, 'peer', { transport: TRANSPORTS.polling });
    await g.ok('room:join', { room: 'lobby' });
    await peer.ok('room:join', { room: 'lobby' });
    const rejectedBefore = (await srv.metrics()).get('chatd_rejected_commands_total');
    const id = () => nextId('bad');
    const send = (fields) => ({ room: 'lobby', id: id(), text: 'hello', ...fields });
    const cases = [
      // message:send: shape
      ['message:send', [send({ text: 5 })], 'bad_request'],
      ['message:send', [send({ text: null })], 'bad_request'],
      ['message:send', [send({ text: ['a'] })], 'bad_request'],
      ['message:send', [send({ text: { a: 1 } })], 'bad_request'],
      ['message:send', [send({ id: 5 })], 'bad_request'],
      ['message:send', [send({ id: '' })], 'bad_request'],
      ['message:send', [send({ id: 'x'.repeat(65) })], 'bad_request'],
      ['message:send', [send({ room: 5 })], 'bad_request'],
      ['message:send', [{ room: 'lobby', id: id() }], 'bad_request'],
      ['message:send', [{ room: 'lobby', text: 'no id' }], 'bad_request'],
      ['message:send', [{ id: id(), text: 'no room' }], 'bad_request'],
      ['message:send', [{}], 'bad_request'],
      ['message:send', [], 'bad_request'],
      ['message:send', [null], 'bad_request'],
      ['message:send', ['lobby'], 'bad_request'],
      ['message:send', [42], 'bad_request'],
      ['message:send', [true], 'bad_request'],
      ['message:send', [[{ room: 'lobby', id: id(), text: 'in an array' }]], 'bad_request'],
      // binary payloads
      ['message:send', [Buffer.from('binary')], 'bad_request'],
      ['message:send', [send({ text: Buffer.from('binary text') })], 'bad_request'],
      ['message:send', [new Uint8Array([1, 2, 3])], 'bad_request'],
      // message:send: rules
      ['message:send', [send({ text: '' })], 'empty_message'],
      ['message:send', [send({ text: ' \n\t ' })], 'empty_message'],
      ['message:send', [send({ text: 'x'.repeat(MAX + 1) })], 'too_long'],
      ['message:send', [send({ text: 'é'.repeat(MAX / 2 + 1) })], 'too_long'], // 51 chars, 102 bytes
      ['message:send', [send({ text: 'x'.repeat(512 * 1024) })], 'too_long'], // huge
      ['message:send', [send({ room: 'nowhere' })], 'not_member'],
      ['message:send', [send({ room: 'not a room!' })], 'invalid_room_name'],
      // other commands
      ['room:join', [{ room: 'nowhere' }], 'no_such_room'],
      ['room:join', [{ room: 42 }], 'bad_request'],
      ['room:join', [{}], 'bad_request'],
      ['room:join', ['lobby'], 'bad_request'],
      ['room:join', [{ room: 'lobby', since: 'yesterday' }], 'bad_request'],
      ['room:join', [{ room: 'lobby', since: -5 }], 'bad_request'],
      ['room:join', [{ room: 'lobby', since: 1.5 }], 'bad_request'],
      ['room:create', [{ room: 'ok', topic: 7 }], 'bad_request'],
      ['room:create', [{ topic: 'no name' }], 'bad_request'],
      ['room:create', [{ room: 'x'.repeat(100000) }], 'invalid_room_name'],
      ['room:topic', [{ room: 'lobby' }], 'bad_request'],
      ['room:topic', [{ room: 'nowhere', topic: 'x' }], 'not_member'],
      ['room:leave', [{ room: 'nowhere' }], 'not_member'],
      ['room:leave', [7], 'bad_request'],
      ['history', [{ room: 'nowhere' }], 'no_such_room'],
      ['history', [{ room: 'lobby', limit: 'all' }], 'bad_request'],
      ['typing', [{ room: 'lobby', typing: 'yes' }], 'bad_request'],
      ['typing', [{ room: 'nowhere', typing: true }], 'not_member'],
      ['dm:send', [{ to: 'nobody', id: id(), text: 'x' }], 'unknown_user'],
      ['dm:send', [{ to: 'peer', id: id(), text: 'x'.repeat(MAX + 1) }], 'too_long'],
      ['dm:history', [{ with: 5 }], 'bad_request'],
      ['rooms:list', ['not an object'], 'bad_request'],
      // unknown events
      ['nope', [{}], 'bad_request'],
      ['message', [{ room: 'lobby', id: id(), text: 'the event name of the server' }], 'bad_request'],
      ['room:delete', [{ room: 'lobby' }], 'bad_request'],
      ['__proto__', [], 'bad_request'],
    ];
    for (const [event, args, code] of cases) {
      const res = await g.ask(event, ...args);
      expectError(res, code, `${event} ${JSON.stringify(args).slice(0, 80)}`);
    }
    // Unknown events without an ack are dropped; the connection carries on.
    g.socket.emit('nope-no-ack', { x: 1 });
    g.socket.emit('message:send', { room: 'lobby', id: id(), text: 'no ack wanted' });
    // At the limit exactly: accepted.
    const atLimit = await g.send('lobby', 'x'.repeat(MAX));
    const atLimit2 = await g.send('lobby', 'é'.repeat(MAX / 2));
    const idMax = await g.ok('message:send', { room: 'lobby', id: 'i'.repeat(64), text: 'a 64-character id' });
    await peer.events.message.waitFor((m) => m.id === idMax.message.id);
    // The text is stored as sent, never interpreted.
    const markup = await g.send('lobby', '<script>alert(1)</script> &amp; "quotes"');
    assert.equal((await peer.events.message.waitFor((m) => m.id === markup.id)).text, '<script>alert(1)</script> &amp; "quotes"');
    assert.deepEqual(peer.events.message.all.map((m) => m.text),
      ['no ack wanted', 'x'.repeat(MAX), 'é'.repeat(MAX / 2), 'a 64-character id', markup.text],
      'only valid messages were broadcast');
    assert.ok(g.socket.connected, 'still connected after all that');
    assert.ok(atLimit.seq < atLimit2.seq);
    const rejected = (await srv.metrics()).get('chatd_rejected_commands_total') - rejectedBefore;
    assert.ok(rejected >= cases.length - 4, `chatd_rejected_commands_total moved by ${rejected}`);
  });

  it('while one client sends garbage, another conversation goes on undisturbed', T, async (t) => {
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    const g = await chat(t, srv, 'gremlin');
    await alice.ok('room:create', { room: 'calm' });
    await alice.ok('room:join', { room: 'calm' });
    await bob.ok('room:join', { room: 'calm' });
    await g.ok('room:join', { room: 'lobby' });

    // The gremlin fires garbage of every kind, without waiting.
    const junk = [
      () => g.socket.emit('message:send', { room: 'calm', id: 5, text: [] }),
      () => g.socket.emit('message:send', Buffer.alloc(2048, 7), () => {}),
      () => g.socket.emit('message:send', { room: 'calm', id: nextId(), text: 'z'.repeat(50000) }, () => {}),
      () => g.socket.emit('room:join', null, () => {}),
      () => g.socket.emit('whatever', 1, 2, 3, () => {}),
      () => g.socket.emit('history', { room: 'calm', before: {} }, () => {}),
      () => g.socket.emit('typing', 'typing'),
      () => g.socket.emit('dm:send', { to: 'alice' }, () => {}),
    ];
    const gremlinDone = (async () => {
      for (let round = 0; round < 25; round++) {
        for (const j of junk) j();
        // one acked command per round, so the gremlin's stream is paced by the server
        await g.ask('room:topic', { room: 'calm', topic: 'hijack' });
      }
    })();
    // Meanwhile alice and bob talk.
    const fromAlice = sendMany(alice, 'calm', 30, { prefix: nextId('a') });
    const fromBob = sendMany(bob, 'calm', 30, { prefix: nextId('b') });
    const sentA = (await fromAlice).map((r) => r.res.message);
    const sentB = (await fromBob).map((r) => r.res.message);
    await gremlinDone;
    await bob.events.message.waitFor((m) => m.id === sentA.at(-1).id);
    await alice.events.message.waitFor((m) => m.id === sentB.at(-1).id);
    assert.deepEqual(bob.events.message.all, sentA, 'bob got all of alice\'s messages, in order');
    assert.deepEqual(alice.events.message.all, sentB, 'alice got all of bob\'s messages, in order');
    assert.deepEqual(seqs([...sentA, ...sentB].sort((x, y) => x.seq - y.seq)), range(1, 60));
    assert.equal(alice.events.topic.length, 0, 'the gremlin is not a member of calm');
    assert.ok(g.socket.connected && alice.socket.connected && bob.socket.connected);
  });

  it('malformed Socket.IO packets on another connection do not disturb a conversation', T, async (t) => {
    const alice = await chat(t, srv, 'ally', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bert', { transport: TRANSPORTS.polling });
    await alice.ok('room:create', { room: 'raw' });
    await alice.ok('room:join', { room: 'raw' });
    await bob.ok('room:join', { room: 'raw' });
    const garbage = [
      '42/chat,[', '42/chat,"not an array"', '42/chat,[]', '42/chat,[42]', '42/chat,{"a":1}', '4', '99',
      '40/chat,not json', '41/nope,', '43/chat,12[', '45-/chat,["x",{"_placeholder":true,"num":0}]', '42/chat,1[]',
    ];
    for (const [i, packet] of garbage.entries()) {
      const transports = i % 2 ? ['polling'] : ['websocket'];
      const raw = new EngineSocket(`${srv.url}`, { path: '/socket.io/', transports });
      t.after(() => raw.close());
      await nextEvent(raw, 'open', { failOn: ['close', 'error'] });
      raw.send(`40/chat,{"username":"raw${i}"}`);
      raw.send(packet);
      // Then a message from alice must reach bob as always.
      const m = await alice.send('raw', `after ${JSON.stringify(packet)}`);
      assert.deepEqual(await bob.events.message.waitFor((x) => x.id === m.id), m);
      raw.close();
    }
    const res = await srv.get('/healthz');
    assert.equal(res.status, 200);
  });
});

describe('chatd budgets of every command, typing relays, abusive connections', () => {
  it('an abusive connection is told why and disconnected; a well-behaved one carries on', T, async (t) => {
    const MAX_VIOLATIONS = 20;
    const srv = await startChatd({ 'message-rate': 5, 'message-burst': 10, 'max-violations': MAX_VIOLATIONS });
    t.after(() => srv.close());
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    const carol = await chat(t, srv, 'carol', { transport: TRANSPORTS.websocket });
    await bob.ok('room:join', { room: 'lobby' });
    await carol.ok('room:join', { room: 'lobby' });
    const mallory = await chat(t, srv, 'mallory', { transport: TRANSPORTS.websocket });
    const kicked = new Recorder(mallory.socket, 'error');
    const order = [];
    mallory.socket.on('error', () => order.push('error'));
    mallory.socket.on('disconnect', (reason) => order.push(`disconnect: ${reason}`));
    const gone = nextEvent(mallory.socket, 'disconnect', { ms: 15000 });
    // rooms:list reads every running room: once free, now charged like any other command.
    const acks = [];
    for (let i = 0; i < 500; i++) mallory.socket.emit('rooms:list', {}, (res) => acks.push(res));
    // Meanwhile bob talks, one message at a time, and carol gets each.
    for (let i = 0; i < 5; i++) {
      const m = await bob.send('lobby', `calm ${i}`);
      await carol.events.message.waitFor((x) => x.id === m.id);
    }
    const [reason] = await gone;
    assert.equal(reason, 'io server disconnect');
    assert.deepEqual(order, ['error', 'disconnect: io server disconnect'], 'the reason comes first');
    const err = await kicked.waitFor();
    assert.equal(err.code, 'too_many_violations');
    assert.ok(typeof err.message === 'string' && err.message.length > 0);
    const refused = acks.filter((r) => r.ok === false);
    assert.ok(refused.every((r) => r.error.code === 'rate_limited'), JSON.stringify(refused.slice(0, 3)));
    assert.ok(refused.length <= MAX_VIOLATIONS, `${refused.length} refusals before the disconnect`);
    assert.ok(acks.length < 500, 'the rest of the flood was never answered');
    // The server forgot mallory (presence, name) and still serves the others.
    const after = await bob.send('lobby', 'still here');
    await carol.events.message.waitFor((x) => x.id === after.id);
    assert.ok(bob.socket.connected && carol.socket.connected);
    const list = await carol.ok('rooms:list', {});
    assert.ok(list.rooms.some((r) => r.name === 'lobby'));
  });

  it('5000 typing toggles reach another member a handful of times, ending on the last state', T, async (t) => {
    const INTERVAL = 1000; // --typing-interval-ms (default)
    const srv = await startChatd({ 'message-rate': 100000, 'message-burst': 100000 });
    t.after(() => srv.close());
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.websocket });
    const carol = await chat(t, srv, 'carol', { transport: TRANSPORTS.websocket });
    for (const c of [alice, bob, carol]) await c.ok('room:join', { room: 'lobby' });
    const started = Date.now();
    for (let i = 0; i < 4999; i++) alice.socket.emit('typing', { room: 'lobby', typing: i % 2 === 0 });
    // The last toggle (false) with an ack: the room has every toggle once it comes back.
    await alice.ok('typing', { room: 'lobby', typing: false });
    // Every relay the room made so far has reached bob once carol's message has.
    await barrier(carol, 'lobby', [bob]);
    const typing = bob.events.typing;
    if (typing.all.at(-1)?.typing !== false) {
      // A start is shown: the stop follows at the end of its interval.
      await typing.waitFor((e) => e.typing === false, { from: typing.length, ms: WAIT_MS + INTERVAL });
    }
    const elapsed = Date.now() - started;
    const relays = typing.all.filter((e) => e.user === 'alice');
    // At most one relay per interval (plus the first one), whatever the toggling rate.
    assert.ok(relays.length <= Math.floor(elapsed / INTERVAL) + 2,
      `${relays.length} relays in ${elapsed} ms`);
    assert.equal(relays.at(-1).typing, false);
    assert.ok(relays.every((e, i) => i === 0 || e.typing !== relays[i - 1].typing), 'only changes');
    assert.equal(alice.events.typing.length, 0, 'not relayed to the typist');
  });

  it('on /, 5000 typing events of one demo client reach each other client a handful of times', T, async (t) => {
    const INTERVAL = 1000;
    const srv = await startChatd({ 'message-rate': 100000, 'message-burst': 100000 });
    t.after(() => srv.close());
    const demo = async (name) => {
      const socket = socketFor(t, srv, '/', TRANSPORTS.websocket);
      const seen = [];
      socket.on('typing', (e) => seen.push(['typing', e.username]));
      socket.on('stop typing', (e) => seen.push(['stop typing', e.username]));
      const messages = new Recorder(socket, 'new message');
      const login = nextEvent(socket, 'login');
      await connected(socket);
      socket.emit('add user', name);
      await login;
      return { socket, seen, messages };
    };
    const typist = await demo('typist');
    const others = [await demo('one'), await demo('two'), await demo('three')];
    const started = Date.now();
    for (let i = 0; i < 5000; i++) typist.socket.emit(i % 2 === 0 ? 'typing' : 'stop typing');
    // The typist's message is relayed after its typing events (one connection, in order).
    typist.socket.emit('new message', 'done typing');
    for (const o of others) await o.messages.waitFor((m) => m.message === 'done typing');
    for (const o of others) {
      if (o.seen.at(-1)?.[0] !== 'stop typing') {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no final stop typing')), WAIT_MS + INTERVAL);
          o.socket.once('stop typing', () => { clearTimeout(timer); resolve(); });
        });
      }
    }
    const elapsed = Date.now() - started;
    for (const o of others) {
      assert.ok(o.seen.length <= Math.floor(elapsed / INTERVAL) + 2, `${o.seen.length} relays in ${elapsed} ms`);
      assert.deepEqual(o.seen.at(-1), ['stop typing', 'typist']);
    }
  });
});
