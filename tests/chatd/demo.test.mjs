// chatd end-to-end: the two classic Socket.IO chat demos on namespace `/`, bridged into the
// room `lobby` (docs/protocol.md, "Demo compatibility on /"; /work/shared/chat-demo-protocol.md).
// Each runs over the stock client's default transports (polling, upgraded to WebSocket) and over
// long-polling only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, Recorder, socketFor, connected, closeSocket, nextEvent, sendMany,
  fullHistory, seqs, range, withTimeout, WAIT_MS,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const FAST = { 'message-rate': 10000, 'message-burst': 10000 };

/** A classic-demo client (`examples/chat`) on `/`: the socket and recorders of its events. */
async function classic(t, srv, transport) {
  const socket = socketFor(t, srv, '/', transport);
  const ev = {};
  for (const e of ['login', 'user joined', 'user left', 'new message', 'typing', 'stop typing', 'chat message']) {
    ev[e] = new Recorder(socket, e, 1, { exact: true });
  }
  await connected(socket, { upgrade: transport.upgrade });
  return { socket, ev, close: () => closeSocket(socket) };
}

/**
 * A tutorial-chat client on `/`, configured as the tutorial's page: `auth.serverOffset`,
 * `ackTimeout` and `retries`; it records `chat message (text, serverOffset)` and, like the
 * page, keeps `auth.serverOffset` at the last offset it saw.
 */
async function tutorial(t, srv, transport, { serverOffset = 0, auth, ...opts } = {}) {
  const socket = socketFor(t, srv, '/', transport, {
    auth: auth === undefined ? { serverOffset } : auth,
    ackTimeout: 10000,
    retries: 3,
    ...opts,
  });
  const msgs = new Recorder(socket, 'chat message', 2, { exact: true });
  socket.on('chat message', (_text, offset) => {
    if (socket.auth) socket.auth.serverOffset = offset;
  });
  await connected(socket, { upgrade: transport.upgrade });
  let counter = 0;
  return {
    socket,
    msgs,
    /** The tutorial's send: `chat message (text, clientOffset)` with an ack (through retries). */
    send(text, clientOffset = `${socket.id}-${counter++}`) {
      return withTimeout(socket.emitWithAck('chat message', text, clientOffset), WAIT_MS, `ack of ${text}`);
    },
    close: () => closeSocket(socket),
  };
}

const keys = (o) => Object.keys(o);

for (const transport of [TRANSPORTS.default, TRANSPORTS.polling]) {
  describe(`classic demo (examples/chat) [${transport.name}]`, () => {
    it('add user → login / user joined; new message relayed and stored in lobby; typing; user left', T, async (t) => {
      const srv = await startChatd(FAST, { t });
      const carol = await chat(t, srv, 'carol', { transport: TRANSPORTS.websocket });
      await carol.ok('room:join', { room: 'lobby' });
      const a = await classic(t, srv, transport);
      const b = await classic(t, srv, transport);

      a.socket.emit('add user', 'alice');
      const loginA = await a.ev.login.waitFor();
      assert.deepEqual(loginA, { numUsers: 1 });
      b.socket.emit('add user', 'bob');
      assert.deepEqual(await b.ev.login.waitFor(), { numUsers: 2 });
      const joined = await a.ev['user joined'].waitFor();
      assert.deepEqual(joined, { username: 'bob', numUsers: 2 });
      assert.deepEqual(keys(joined), ['username', 'numUsers'], 'key order of the reference server');

      // alice types and sends; the demo escapes HTML itself: the text travels opaquely.
      a.socket.emit('typing');
      assert.deepEqual(await b.ev.typing.waitFor(), { username: 'alice' });
      a.socket.emit('new message', '&lt;b&gt;hi');
      a.socket.emit('stop typing');
      const relayed = await b.ev['new message'].waitFor();
      assert.deepEqual(relayed, { username: 'alice', message: '&lt;b&gt;hi' });
      assert.deepEqual(keys(relayed), ['username', 'message']);
      assert.deepEqual(await b.ev['stop typing'].waitFor(), { username: 'alice' });
      // ... to /chat members of lobby as a `message`, and stored in lobby's history.
      const bridged = await carol.events.message.waitFor();
      assert.equal(bridged.room, 'lobby');
      assert.equal(bridged.user, 'alice');
      assert.equal(bridged.text, '&lt;b&gt;hi');
      assert.deepEqual(await fullHistory(carol, 'lobby'), [bridged]);

      // A /chat member of lobby reaches the demo clients.
      const fromCarol = await carol.send('lobby', 'hello demo <3');
      for (const c of [a, b]) {
        assert.deepEqual(await c.ev['new message'].waitFor((m) => m.username === 'carol'), { username: 'carol', message: 'hello demo <3' });
      }
      assert.equal(fromCarol.seq, 2);

      // bob answers: alice gets it. Behind it in alice's stream: no echo of her own message,
      // no typing events of her own, no `user joined` for herself.
      b.socket.emit('new message', 'hi alice');
      await a.ev['new message'].waitFor((m) => m.username === 'bob');
      assert.deepEqual(a.ev['new message'].all, [
        { username: 'carol', message: 'hello demo <3' },
        { username: 'bob', message: 'hi alice' },
      ]);
      assert.equal(a.ev.typing.length + a.ev['stop typing'].length, 0);
      assert.deepEqual(a.ev['user joined'].all, [{ username: 'bob', numUsers: 2 }]);
      assert.equal(a.ev['chat message'].length, 0, 'classic clients get no tutorial events');

      // alice leaves: bob is told, with the new count.
      a.close();
      const left = await b.ev['user left'].waitFor();
      assert.deepEqual(left, { username: 'alice', numUsers: 1 });
      assert.deepEqual(keys(left), ['username', 'numUsers']);
      for (const c of [a, b]) for (const r of Object.values(c.ev)) assert.deepEqual(r.problems, []);
    });

    it('duplicate names are accepted; events before add user and a second add user are ignored', T, async (t) => {
      const srv = await startChatd(FAST, { t });
      const carol = await chat(t, srv, 'carol');
      await carol.ok('room:join', { room: 'lobby' });
      const a = await classic(t, srv, transport);
      a.socket.emit('add user', 'alice');
      assert.deepEqual(await a.ev.login.waitFor(), { numUsers: 1 });

      const b = await classic(t, srv, transport);
      // Not logged in yet: ignored (not relayed, not stored).
      b.socket.emit('new message', 'sneaky');
      b.socket.emit('typing');
      b.socket.emit('stop typing');
      // The same name again: accepted, as the demo expects.
      b.socket.emit('add user', 'alice');
      assert.deepEqual(await b.ev.login.waitFor(), { numUsers: 2 });
      assert.deepEqual(await a.ev['user joined'].waitFor(), { username: 'alice', numUsers: 2 });
      // A second `add user` on the same socket changes nothing.
      b.socket.emit('add user', 'mallory');
      b.socket.emit('new message', 'still alice');
      assert.deepEqual(await a.ev['new message'].waitFor(), { username: 'alice', message: 'still alice' });
      assert.equal(b.ev.login.length, 1, 'one login only');
      assert.deepEqual(a.ev['new message'].all, [{ username: 'alice', message: 'still alice' }], 'sneaky was not relayed');
      assert.equal(a.ev.typing.length + a.ev['stop typing'].length, 0);
      assert.deepEqual(a.ev['user joined'].all, [{ username: 'alice', numUsers: 2 }]);
      const stored = await fullHistory(carol, 'lobby');
      assert.deepEqual(stored.map((m) => [m.user, m.text]), [['alice', 'still alice']]);
      // A third client counts too (numUsers counts connections that added a user).
      const c = await classic(t, srv, transport);
      c.socket.emit('add user', 'alice');
      assert.deepEqual(await c.ev.login.waitFor(), { numUsers: 3 });
      b.close();
      assert.deepEqual(await a.ev['user left'].waitFor(), { username: 'alice', numUsers: 2 });
      assert.deepEqual(await c.ev['user left'].waitFor(), { username: 'alice', numUsers: 2 });
    });
  });

  describe(`tutorial chat [${transport.name}]`, () => {
    it('auth.serverOffset catch-up in order; chat message with clientOffset + ack, broadcast to all incl. the sender; resend acked once', T, async (t) => {
      const srv = await startChatd(FAST, { t });
      const carol = await chat(t, srv, 'carol');
      await carol.ok('room:join', { room: 'lobby' });
      const seeded = (await sendMany(carol, 'lobby', 5, { text: (i) => `seed ${i}` })).map((r) => r.res.message);

      const ta = await tutorial(t, srv, transport, { serverOffset: 0 });
      await ta.msgs.waitCount(() => true, 5);
      assert.deepEqual(ta.msgs.all, seeded.map((m) => [m.text, m.seq]), 'every message after 0, in order');
      const tb = await tutorial(t, srv, transport, { serverOffset: 3 });
      await tb.msgs.waitCount(() => true, 2);
      assert.deepEqual(tb.msgs.all, [['seed 3', 4], ['seed 4', 5]], 'only those after serverOffset 3');
      const demo = await classic(t, srv, transport);
      demo.socket.emit('add user', 'dora');
      await demo.ev.login.waitFor();

      // Send as the tutorial page does. The broadcast reaches everyone, the sender too, before
      // the sender's ack; the ack has no arguments.
      const order = [];
      ta.socket.on('chat message', (text) => order.push(`event ${text}`));
      const ackArgs = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ack')), WAIT_MS);
        ta.socket.emit('chat message', 'hello', `${ta.socket.id}-0`, (err, ...args) => {
          clearTimeout(timer);
          order.push('ack');
          if (err) reject(err); else resolve(args);
        });
      });
      assert.deepEqual(ackArgs, [], 'acknowledged with no arguments');
      assert.deepEqual(order, ['event hello', 'ack'], 'broadcast, then ack');
      assert.deepEqual(ta.msgs.all.at(-1), ['hello', 6]);
      assert.deepEqual(await tb.msgs.waitFor(([text]) => text === 'hello'), ['hello', 6]);
      const bridged = await carol.events.message.waitFor((m) => m.text === 'hello');
      assert.equal(bridged.seq, 6);
      assert.equal(bridged.room, 'lobby');
      assert.deepEqual(await demo.ev['new message'].waitFor(), { username: bridged.user, message: 'hello' });

      // The same clientOffset again (a retry): acknowledged, not broadcast again, not stored again.
      assert.equal(await ta.send('hello', `${ta.socket.id}-0`), undefined);
      await ta.send('next one', `${ta.socket.id}-1`);
      await tb.msgs.waitFor(([text]) => text === 'next one');
      assert.deepEqual(tb.msgs.all.slice(2), [['hello', 6], ['next one', 7]]);
      assert.deepEqual(ta.msgs.all.slice(5), [['hello', 6], ['next one', 7]]);
      assert.deepEqual(seqs(await fullHistory(carol, 'lobby')), range(1, 7));
      // The stock client tracked the offsets: auth.serverOffset is the last one seen.
      assert.equal(ta.socket.auth.serverOffset, 7);
      for (const c of [ta, tb]) assert.deepEqual(c.msgs.problems, []);
    });

    it('earlier tutorial steps: chat message with text only, no serverOffset', T, async (t) => {
      const srv = await startChatd(FAST, { t });
      const carol = await chat(t, srv, 'carol');
      await carol.ok('room:join', { room: 'lobby' });
      await carol.send('lobby', 'already there');
      const ta = await tutorial(t, srv, transport, { serverOffset: 0 });
      await ta.msgs.waitFor(([text]) => text === 'already there');
      // A client of an earlier step: no auth, no offset, no ack.
      const early = socketFor(t, srv, '/', transport);
      const earlyMsgs = new Recorder(early, 'chat message', 2);
      await connected(early, { upgrade: transport.upgrade });
      early.emit('chat message', 'plain text');
      const got = await earlyMsgs.waitFor(([text]) => text === 'plain text');
      assert.deepEqual(got, ['plain text', 2], 'echoed to the sender too, with its offset');
      assert.deepEqual(await ta.msgs.waitFor(([text]) => text === 'plain text'), ['plain text', 2]);
      assert.equal((await carol.events.message.waitFor((m) => m.text === 'plain text')).seq, 2);
      // And the lobby still works for everyone afterwards.
      const after = await carol.send('lobby', 'after the early client');
      assert.deepEqual(await earlyMsgs.waitFor(([text]) => text === after.text), [after.text, after.seq]);
    });

    it('reconnecting: the missed messages come from serverOffset (no connection state recovery on /)', T, async (t) => {
      const srv = await startChatd(FAST, { t });
      const carol = await chat(t, srv, 'carol');
      await carol.ok('room:join', { room: 'lobby' });
      const ta = await tutorial(t, srv, transport, { serverOffset: 0 });
      await ta.send('mine 1');
      await ta.msgs.waitFor(([text]) => text === 'mine 1');

      // The tutorial's "Disconnect" button: a client-side disconnect, never recovered.
      ta.socket.disconnect();
      const missed1 = (await sendMany(carol, 'lobby', 3, { text: (i) => `missed ${i}` })).map((r) => r.res.message);
      ta.socket.connect();
      await connected(ta.socket);
      assert.notEqual(ta.socket.recovered, true);
      await ta.msgs.waitFor(([text]) => text === 'missed 2');

      // The transport drops: no recovery on `/` (no pid), the catch-up brings what it missed.
      const d = nextEvent(ta.socket, 'disconnect');
      ta.socket.io.engine.close();
      await d;
      const missed2 = (await sendMany(carol, 'lobby', 2, { text: (i) => `dropped ${i}` })).map((r) => r.res.message);
      ta.socket.connect();
      await connected(ta.socket);
      assert.notEqual(ta.socket.recovered, true);
      await ta.msgs.waitFor(([text]) => text === 'dropped 1');
      // Live again: a message after the recovery, then everything is there exactly once.
      await ta.send('mine 2');
      await ta.msgs.waitFor(([text]) => text === 'mine 2');
      assert.deepEqual(ta.msgs.all.map(([text]) => text),
        ['mine 1', ...missed1.map((m) => m.text), ...missed2.map((m) => m.text), 'mine 2']);
      assert.deepEqual(ta.msgs.all.map(([, seq]) => seq), range(1, 7));
      assert.deepEqual(ta.msgs.problems, [], 'no recovery offset appended on /');
    });
  });
}

describe('tutorial chat: catch-up older than the in-memory window while messages keep coming', () => {
  it('catch-up comes first, in order, then live messages: no gap, no duplicate', T, async (t) => {
    const srv = await startChatd({ ...FAST, 'history-window': 5 }, { t });
    const writers = [];
    for (let i = 0; i < 4; i++) {
      const w = await chat(t, srv, `writer${i}`, { transport: i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket });
      await w.ok('room:join', { room: 'lobby' });
      writers.push(w);
    }
    await sendMany(writers[0], 'lobby', 30);
    // Round after round, while several writers keep the store busy, tutorial clients connect
    // from offset 0 and from the middle: each must see every message once, in order.
    for (let round = 0; round < 4; round++) {
      const live = Promise.all(writers.map((w) => sendMany(w, 'lobby', 10)));
      const clients = await Promise.all([
        tutorial(t, srv, TRANSPORTS.websocket, { serverOffset: 0 }),
        tutorial(t, srv, TRANSPORTS.polling, { serverOffset: 25 }),
        tutorial(t, srv, TRANSPORTS.websocket, { serverOffset: 0 }),
      ]);
      const last = Math.max(...(await live).flat().map((r) => r.res.message.seq));
      for (const [i, c] of clients.entries()) {
        await c.msgs.waitFor(([, seq]) => seq === last);
        assert.deepEqual(c.msgs.all.map(([, seq]) => seq), range(i === 1 ? 26 : 1, last), `round ${round}, client ${i}`);
        c.close();
      }
    }
  });
});
