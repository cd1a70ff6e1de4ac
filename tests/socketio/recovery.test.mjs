// Reconnection by the Manager, and connection state recovery (protocol-notes.md B.9).
//
// Recovery scenario ("gated"): A joins a room and receives an event (so it has an offset); its
// automatic reconnection is switched off and its transport dropped; while it is down, B makes
// the server broadcast; once the server has recorded A's disconnect, A reconnects (same Socket
// object, so it sends its pid and offset) and must get every missed event exactly once, in order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, ID_RE, startFixture, connectClient, waitConnect, nextDisconnect, ask, record,
  serverReason, normalizeBinary, DEFAULT_WAIT_MS,
} from '../helpers/sio.mjs';

const T = { timeout: 30000 };

const FAST_RECONNECT = { reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50, randomizationFactor: 0 };

/**
 * socket.io-client 4.8 sets `recovered = pid && this._pid === pid`: `false` before the first
 * connection and after a failed recovery, but `undefined` after a reconnection to a server
 * without recovery (no pid). Both mean "not recovered".
 */
function assertNotRecovered(socket) {
  assert.ok(socket.recovered === false || socket.recovered === undefined, `recovered = ${socket.recovered}`);
}

/** Drops A's transport without auto-reconnection; resolves once the server saw A leave. */
async function dropAndConfirm(t, server, a) {
  const id = a.id;
  a.io.reconnection(false);
  const d = nextDisconnect(a);
  a.io.engine.close();
  assert.equal((await d).reason, 'forced close');
  const r = await serverReason(t, server, id);
  assert.equal(r.reason, 'transport close');
  return id;
}

/** Reconnects A (its pid and offset go with the CONNECT) and waits for 'connect'. */
async function reconnect(a) {
  a.io.reconnection(true);
  a.connect();
  await waitConnect(a);
}

for (const mode of MODES) {
  describe(`sio reconnection [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    it('the Manager reconnects after the transport drops; a new socket id', T, async (t) => {
      const s = await connectClient(t, server, mode, FAST_RECONNECT);
      const firstId = s.id;
      const reconnected = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reconnect event')), DEFAULT_WAIT_MS);
        s.io.once('reconnect', (attempt) => { clearTimeout(timer); resolve(attempt); });
      });
      const d = nextDisconnect(s);
      s.io.engine.close();
      assert.equal((await d).reason, 'forced close');
      assert.equal(s.active, true);
      assert.ok((await reconnected) >= 1);
      await waitConnect(s);
      assert.match(s.id, ID_RE);
      assert.notEqual(s.id, firstId);
      assertNotRecovered(s);
      assert.equal((await ask(s, 'whoami')).recovered, false);
      assert.equal(await ask(s, 'echo', 'again'), 'again');
      assert.equal((await serverReason(t, server, firstId)).reason, 'transport close');
    });

    it('without recovery: no pid, no offset argument, recovered === false after a reconnection', T, async (t) => {
      const a = await connectClient(t, server, mode);
      assert.equal(a._pid, undefined, 'the CONNECT reply carries no pid');
      const got = record(a, 'tick');
      await ask(a, 'join', 'norec');
      await ask(a, 'io-emit', { to: 'norec', event: 'tick' }, 1);
      assert.deepEqual(await got.until(1), [[1]], 'no offset appended');
      const id = await dropAndConfirm(t, server, a);
      await reconnect(a);
      assertNotRecovered(a);
      assert.notEqual(a.id, id);
      assert.equal(a._pid, undefined);
      const me = await ask(a, 'whoami');
      assert.equal(me.recovered, false);
      assert.deepEqual(me.rooms, [a.id], 'rooms are not restored');
    });
  });

  describe(`sio connection state recovery [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(['--recovery']); });
    after(async () => { await server?.stop(); });

    it('the CONNECT reply has a pid; events carry a string offset as last argument, acks do not', T, async (t) => {
      const a = await connectClient(t, server, mode);
      assert.match(a._pid, ID_RE);
      assert.notEqual(a._pid, a.id);
      const got = record(a, 'tick');
      await ask(a, 'self-emit', { event: 'tick' }, 'x');
      const [[arg, offset]] = await got.until(1);
      assert.equal(arg, 'x');
      assert.equal(typeof offset, 'string');
      assert.equal(a._lastOffset, offset);
      assert.equal(await ask(a, 'echo', 'plain'), 'plain');
      const me = await ask(a, 'whoami');
      assert.equal(me.recovered, false);
    });

    it('missed room broadcasts are replayed exactly once, in order, after recovery', T, async (t) => {
      const a = await connectClient(t, server, mode);
      const b = await connectClient(t, server, mode);
      await ask(a, 'join', ['rec-room', 'rec-other']);
      await ask(a, 'set-data', { user: 'alice' });
      const ticks = record(a, 'tick');
      const others = record(a, 'not-for-a');
      await ask(b, 'io-emit', { to: 'rec-room', event: 'tick' }, 0);
      await ticks.until(1);
      const pid = a._pid;
      const id = await dropAndConfirm(t, server, a);

      // while A is down
      await ask(b, 'io-emit', { to: 'rec-room', event: 'tick' }, 1);
      await ask(b, 'io-emit', { to: 'rec-other', event: 'tick' }, 2, { bin: Buffer.from([2]) });
      await ask(b, 'io-emit', { to: 'rec-b-only', event: 'not-for-a' }, 'x');
      await ask(b, 'io-emit', { except: 'rec-room', event: 'not-for-a' }, 'y');
      await ask(b, 'io-emit', { to: 'rec-room', volatile: true, event: 'not-for-a' }, 'volatile');
      await ask(b, 'io-emit', { to: ['rec-room', 'rec-other'], event: 'tick' }, 3);
      await ask(b, 'io-emit', { event: 'tick' }, 4);
      await ask(b, 'io-emit', { to: id, event: 'tick' }, 5);

      await reconnect(a);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id, 'same socket id');
      assert.equal(a._pid, pid, 'same pid');
      const all = await ticks.until(6);
      // a fence: anything else for A would arrive before this ack
      const me = await ask(a, 'whoami');
      assert.deepEqual(all.map(([n]) => n), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(normalizeBinary(all[2][1]), { bin: Buffer.from([2]) });
      for (const args of all) assert.equal(typeof args.at(-1), 'string', 'every replayed event has its offset');
      assert.equal(new Set(all.map((args) => args.at(-1))).size, 6, 'offsets are distinct');
      assert.equal(others.all.length, 0, 'nothing A was not a target of');
      assert.deepEqual(me.rooms, [id, 'rec-other', 'rec-room'].sort(), 'rooms restored');
      assert.deepEqual(me.data, { user: 'alice' }, 'data restored');
      assert.equal(me.recovered, true);
      // and it is live again
      await ask(b, 'io-emit', { to: 'rec-room', event: 'tick' }, 6);
      assert.deepEqual((await ticks.until(7)).at(-1)[0], 6);
    });

    it('the Manager\'s own reconnection recovers the session', T, async (t) => {
      // the delay leaves the server ample time to see the old transport close first
      const a = await connectClient(t, server, mode, { ...FAST_RECONNECT, reconnectionDelay: 500, reconnectionDelayMax: 500 });
      const b = await connectClient(t, server, mode);
      await ask(a, 'join', 'auto-rec');
      const ticks = record(a, 'tick');
      await ask(b, 'io-emit', { to: 'auto-rec', event: 'tick' }, 'before');
      await ticks.until(1);
      const id = a.id;
      const d = nextDisconnect(a);
      a.io.engine.close();
      assert.equal((await d).reason, 'forced close');
      await ask(b, 'io-emit', { to: 'auto-rec', event: 'tick' }, 'during');
      await waitConnect(a);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      await ask(a, 'whoami');
      assert.deepEqual(ticks.all.map(([v]) => v), ['before', 'during']);
    });

    it('a client that left with socket.disconnect() is not recovered', T, async (t) => {
      const a = await connectClient(t, server, mode);
      const ticks = record(a, 'tick');
      await ask(a, 'self-emit', { event: 'tick' }, 1);
      await ticks.until(1);
      const id = a.id;
      a.disconnect();
      assert.equal((await serverReason(t, server, id)).reason, 'client namespace disconnect');
      a.connect();
      await waitConnect(a);
      assertNotRecovered(a);
      assert.notEqual(a.id, id);
    });

    it('a client that never received an event (no offset) is not recovered', T, async (t) => {
      const a = await connectClient(t, server, mode);
      assert.equal(a._lastOffset, undefined);
      const id = await dropAndConfirm(t, server, a);
      await reconnect(a);
      assertNotRecovered(a);
      assert.notEqual(a.id, id);
    });
  });
}

describe('sio connection state recovery: expiry', () => {
  let server;
  before(async () => { server = await startFixture(['--recovery', '--max-disconnection-ms', '300']); });
  after(async () => { await server?.stop(); });

  for (const mode of MODES) {
    it(`[${mode.name}] a session older than maxDisconnectionDuration is not recovered`, T, async (t) => {
      const a = await connectClient(t, server, mode);
      const b = await connectClient(t, server, mode);
      const ticks = record(a, 'tick');
      await ask(a, 'self-emit', { event: 'tick' }, 1);
      await ticks.until(1);
      const id = await dropAndConfirm(t, server, a);
      // Let the session expire: the server itself waits 600 ms (an ack nobody answers).
      const r = await b.timeout(5000).emitWithAck('server-ack', { event: 'nobody', timeoutMs: 600 });
      assert.deepEqual(r, { error: 'operation has timed out' });
      await reconnect(a);
      assertNotRecovered(a);
      assert.notEqual(a.id, id);
    });
  }
});
