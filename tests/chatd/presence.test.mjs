// chatd end-to-end: presence (join/leave events, tabs counted once, the grace period, no
// flicker on a quick reconnect, `room:leave` at once) and typing (start, stop, expiry).
// Timers are configured short; where a test asserts a timer, it waits it out and checks the
// timing relative to the configured value.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, barrier, expectError, elapse, nextEvent, connected,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const GRACE = 1000; // --presence-grace-ms
// Long timers, for tests that check something happens well before them.
const LONG = 5000;
const TYPING = 800; // --typing-timeout-ms (re-announce throttle: half of it)
// Timers never fire early; the client's clock and the server's can disagree by a millisecond
// or two of rounding.
const EARLY = 5;

const isPresence = (room, user, online) => (p) => p.room === room && p.user === user && (online === undefined || p.online === online);

async function members(client, room) {
  const res = await client.ok('rooms:list', {});
  return res.rooms.find((r) => r.name === room)?.members;
}

// Typing events are volatile (may be dropped when the transport cannot take them at once), so
// the observers here are on WebSocket and otherwise idle.
async function typingSetup(t, srv, room) {
  const typist = await chat(t, srv, `${room}-typist`, { transport: TRANSPORTS.websocket });
  const other = await chat(t, srv, `${room}-other`, { transport: TRANSPORTS.websocket });
  await typist.ok('room:create', { room });
  await typist.ok('room:join', { room });
  await other.ok('room:join', { room });
  await typist.events.presence.waitFor(isPresence(room, other.user, true));
  return { typist, other };
}

// These wait out timers, independently of each other (own users and rooms): run together.
describe('chatd presence', { concurrency: true }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({ 'presence-grace-ms': GRACE, 'typing-timeout-ms': TYPING, 'message-burst': 1000 });
  });
  after(async () => { await srv?.close(); });

  it('joins are announced; two tabs of one user count once; the leave comes after the grace period', T, async (t) => {
    const alice = await chat(t, srv, 'alice');
    await alice.ok('room:create', { room: 'p1' });
    await alice.ok('room:join', { room: 'p1' });
    const tab1 = await chat(t, srv, 'bob');
    const tab2 = await chat(t, srv, 'bob', { token: tab1.token, transport: TRANSPORTS.polling });
    assert.equal(tab2.user, 'bob');

    const j1 = await tab1.ok('room:join', { room: 'p1' });
    assert.deepEqual(j1.members, ['alice', 'bob']);
    assert.deepEqual(await alice.events.presence.waitFor(isPresence('p1', 'bob')), { room: 'p1', user: 'bob', online: true });
    const j2 = await tab2.ok('room:join', { room: 'p1' });
    assert.deepEqual(j2.members, ['alice', 'bob']);
    assert.equal(await members(alice, 'p1'), 2);

    // The first tab goes: bob is still there through the other one, even after the grace period.
    tab1.close();
    await elapse(GRACE + 200);
    await barrier(tab2, 'p1', [alice]);
    assert.deepEqual(alice.events.presence.filter(isPresence('p1', 'bob')), [{ room: 'p1', user: 'bob', online: true }],
      'one join for two tabs, no leave while a tab remains');
    assert.equal(await members(alice, 'p1'), 2);

    // The last tab goes: the leave is announced once the grace period is over, not before.
    const t0 = performance.now();
    tab2.close();
    const left = await alice.events.presence.waitFor(isPresence('p1', 'bob', false), { ms: GRACE + 5000 });
    const waited = performance.now() - t0;
    assert.deepEqual(left, { room: 'p1', user: 'bob', online: false });
    assert.ok(waited >= GRACE - EARLY, `leave announced after ${waited.toFixed(0)} ms, grace is ${GRACE} ms`);
    assert.equal(await members(alice, 'p1'), 1);
    assert.equal(alice.events.presence.count(isPresence('p1', 'bob')), 2);
  });

  it('a quick reconnect (new connection, same token, re-join) within the grace period: no leave/join flicker', T, async (t) => {
    const alice = await chat(t, srv, 'erik');
    await alice.ok('room:create', { room: 'p3' });
    await alice.ok('room:join', { room: 'p3' });
    const bob = await chat(t, srv, 'fay', { transport: TRANSPORTS.polling });
    await bob.ok('room:join', { room: 'p3' });
    await alice.events.presence.waitFor(isPresence('p3', 'fay', true));
    const m = await alice.send('p3', 'before the drop');
    await bob.events.message.waitFor((x) => x.id === m.id);

    bob.close();
    const again = await chat(t, srv, 'fay', { token: bob.token, transport: TRANSPORTS.polling });
    const j = await again.ok('room:join', { room: 'p3', since: m.seq });
    assert.deepEqual(j.members, ['erik', 'fay']);
    // Past the moment the leave would have been announced (the grace period ran from the
    // drop, before the re-join):
    await elapse(GRACE + 200);
    await barrier(again, 'p3', [alice]);
    assert.deepEqual(alice.events.presence.filter(isPresence('p3', 'fay')), [{ room: 'p3', user: 'fay', online: true }]);
    assert.equal(await members(alice, 'p3'), 2);
  });

  it('a dropped connection recovered within the grace period: no flicker, still present afterwards', T, async (t) => {
    const alice = await chat(t, srv, 'gus');
    await alice.ok('room:create', { room: 'p4' });
    await alice.ok('room:join', { room: 'p4' });
    const bob = await chat(t, srv, 'hana', { transport: TRANSPORTS.websocket });
    await bob.ok('room:join', { room: 'p4' });
    await alice.events.presence.waitFor(isPresence('p4', 'hana', true));
    const m = await alice.send('p4', 'before the drop');
    await bob.events.message.waitFor((x) => x.id === m.id);

    const d = nextEvent(bob.socket, 'disconnect');
    bob.socket.io.engine.close();
    await d;
    bob.socket.connect();
    await connected(bob.socket);
    assert.equal(bob.socket.recovered, true);
    await elapse(GRACE + 200);
    await barrier(bob, 'p4', [alice]);
    assert.deepEqual(alice.events.presence.filter(isPresence('p4', 'hana')), [{ room: 'p4', user: 'hana', online: true }],
      'no leave (nor a second join) for a recovered connection');
    assert.equal(await members(alice, 'p4'), 2, 'hana is still counted');

    // When she really goes, the leave is announced (after the grace period).
    bob.close();
    await alice.events.presence.waitFor(isPresence('p4', 'hana', false), { ms: GRACE + 5000 });
    assert.equal(await members(alice, 'p4'), 1);
  });
});

describe('chatd typing', () => {
  let srv;
  before(async () => {
    srv = await startChatd({ 'presence-grace-ms': GRACE, 'typing-timeout-ms': TYPING, 'message-burst': 1000 });
  });
  after(async () => { await srv?.close(); });

  const setup = (t, room) => typingSetup(t, srv, room);

  it('typing expires after --typing-timeout-ms without a refresh; refreshes keep it going', T, async (t) => {
    const { typist, other } = await setup(t, 't2');
    let last = performance.now();
    await typist.ok('typing', { room: 't2', typing: true });
    await other.events.typing.waitFor((e) => e.typing);
    // Refresh twice, half a timeout apart: no expiry meanwhile.
    for (let i = 0; i < 2; i++) {
      await elapse(TYPING / 2);
      last = performance.now();
      await typist.ok('typing', { room: 't2', typing: true });
    }
    const stopped = await other.events.typing.waitFor((e) => !e.typing, { ms: TYPING + 5000 });
    const after = performance.now() - last;
    assert.deepEqual(stopped, { room: 't2', user: 't2-typist', typing: false });
    assert.ok(after >= TYPING - EARLY, `expired ${after.toFixed(0)} ms after the last refresh (timeout ${TYPING} ms)`);
    assert.equal(other.events.typing.count((e) => !e.typing), 1, 'no earlier expiry');
  });

  it('a sent message ends typing: the next start is announced again at once', T, async (t) => {
    const { typist, other } = await setup(t, 't3');
    await typist.ok('typing', { room: 't3', typing: true });
    await other.events.typing.waitFor((e) => e.typing);
    const m = await typist.send('t3', 'done typing');
    await other.events.message.waitFor((x) => x.id === m.id);
    await typist.ok('typing', { room: 't3', typing: true });
    await other.events.typing.waitCount((e) => e.typing, 2);
  });
});

describe('chatd presence: a connection that goes silent', () => {
  const PING_INTERVAL = 200; // --ping-interval-ms
  const PING_TIMEOUT = 400; // --ping-timeout-ms
  const GRACE2 = 300;
  let srv;
  before(async () => {
    srv = await startChatd({ 'ping-interval-ms': PING_INTERVAL, 'ping-timeout-ms': PING_TIMEOUT, 'presence-grace-ms': GRACE2 });
  });
  after(async () => { await srv?.close(); });

  it('stops answering pings: dropped after the ping timeout, announced gone after the grace period', T, async (t) => {
    const alice = await chat(t, srv, 'watcher', { transport: TRANSPORTS.websocket });
    await alice.ok('room:create', { room: 'silent' });
    await alice.ok('room:join', { room: 'silent' });
    const ghost = await chat(t, srv, 'ghost', { transport: TRANSPORTS.polling });
    assert.equal(ghost.socket.io.engine._pingInterval, PING_INTERVAL, 'the handshake carries --ping-interval-ms');
    assert.equal(ghost.socket.io.engine._pingTimeout, PING_TIMEOUT, 'and --ping-timeout-ms');
    await ghost.ok('room:join', { room: 'silent' });
    await alice.events.presence.waitFor(isPresence('silent', 'ghost', true));

    // The ghost's machine vanishes: it still gets pings but never answers them.
    const engine = ghost.socket.io.engine;
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => (type === 'pong' ? undefined : send(type, ...rest));
    const t0 = performance.now();
    const dropped = nextEvent(ghost.socket, 'disconnect', { ms: PING_INTERVAL + PING_TIMEOUT + 5000 });
    const gone = await alice.events.presence.waitFor(isPresence('silent', 'ghost', false), { ms: PING_INTERVAL + PING_TIMEOUT + GRACE2 + 5000 });
    const waited = performance.now() - t0;
    assert.deepEqual(gone, { room: 'silent', user: 'ghost', online: false });
    assert.ok(waited >= PING_TIMEOUT + GRACE2 - EARLY, `announced ${waited.toFixed(0)} ms after going silent`);
    await dropped;
    assert.ok(alice.socket.connected, 'the watcher, who answers pings, is still connected');
  });
});

describe('chatd presence and typing: what happens at once (long timers)', () => {
  let srv;
  before(async () => {
    srv = await startChatd({ 'presence-grace-ms': LONG, 'typing-timeout-ms': LONG, 'message-burst': 1000 });
  });
  after(async () => { await srv?.close(); });
  const setup = (t, room) => typingSetup(t, srv, room);

  it('room:leave is announced at once', T, async (t) => {
    const alice = await chat(t, srv, 'carla');
    const bob = await chat(t, srv, 'dan', { transport: TRANSPORTS.polling });
    await alice.ok('room:create', { room: 'p2' });
    await alice.ok('room:join', { room: 'p2' });
    await bob.ok('room:join', { room: 'p2' });
    await alice.events.presence.waitFor(isPresence('p2', 'dan', true));
    const t0 = performance.now();
    await bob.ok('room:leave', { room: 'p2' });
    await alice.events.presence.waitFor(isPresence('p2', 'dan', false), { ms: LONG });
    const waited = performance.now() - t0;
    assert.ok(waited < LONG, `room:leave announced after ${waited.toFixed(0)} ms (grace ${LONG} ms)`);
    assert.equal(await members(alice, 'p2'), 1);
  });

  it('start reaches the others but not the typist; stop ends it', T, async (t) => {
    const { typist, other } = await setup(t, 't1');
    const t0 = performance.now();
    assert.deepEqual(await typist.ask('typing', { room: 't1', typing: true }), { ok: true });
    assert.deepEqual(await other.events.typing.waitFor(), { room: 't1', user: 't1-typist', typing: true });
    await typist.ok('typing', { room: 't1', typing: false });
    assert.deepEqual(await other.events.typing.waitFor((e) => !e.typing), { room: 't1', user: 't1-typist', typing: false });
    assert.ok(performance.now() - t0 < LONG, 'the stop came from `typing: false`, not from the expiry');
    await barrier(other, 't1', [typist]);
    assert.equal(typist.events.typing.length, 0, 'the typist gets no typing events of its own');
    expectError(await typist.ask('typing', { room: 't1', typing: 'yes' }), 'bad_request', 'typing: "yes"');
    expectError(await typist.ask('typing', { room: 't1' }), 'bad_request', 'typing missing');
  });

});
