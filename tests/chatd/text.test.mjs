// chatd end-to-end: spoofing-prone text over the wire (docs/protocol.md, "Text rules"): control
// and bidi-override characters refused in messages, topics and names; invisible-only messages
// refused; look-alike names taken; the same rules on the demo namespace `/`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, chatRefused, expectError, fullHistory, Recorder, socketFor, connected,
  TRANSPORTS,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const FAST = { 'message-rate': 10000, 'message-burst': 10000 };

describe('chatd text rules', () => {
  it('/chat: control and bidi-override characters refused, invisible-only messages empty, look-alike names taken', T, async (t) => {
    const srv = await startChatd(FAST, { t });
    for (const username of ['al\u202Eice', 'al\u200Bice', '\u3164\u3164', 'bob\u0000']) {
      const err = await chatRefused(t, srv, { username });
      assert.equal(err.data?.code, 'invalid_name', JSON.stringify(username));
    }
    const alice = await chat(t, srv, 'alice');
    for (const username of ['\u0430lice', '\uFF41lice', 'aIice', 'ALIC\u0415']) {
      const err = await chatRefused(t, srv, { username });
      assert.equal(err.data?.code, 'name_taken', JSON.stringify(username));
    }
    // NFC: "José" typed with a combining accent is the one-code-point name.
    const jose = await chat(t, srv, 'Jose\u0301', { transport: TRANSPORTS.polling });
    assert.equal(jose.user, 'Jos\u00e9');

    await alice.ok('room:join', { room: 'lobby' });
    let n = 0;
    const send = (text) => alice.ask('message:send', { room: 'lobby', id: `t-${n++}`, text });
    for (const text of ['\u202Egnp.exe', 'nul\u0000', '\u001b[2J', 'cr\r', '\u0085', 'iso\u2066late\u2069']) {
      expectError(await send(text), 'invalid_text', JSON.stringify(text));
    }
    for (const text of ['\u200B\u200B\u200B', '\uFEFF', '\u2060\u200D', '\uFE0F']) {
      expectError(await send(text), 'empty_message', JSON.stringify(text));
    }
    expectError(await alice.ask('dm:send', { to: 'Jos\u00e9', id: 'dm-1', text: 'x\u202E' }), 'invalid_text', 'dm');
    const ok = await send('two\nlines\tand \u05e9\u05dc\u05d5\u05dd\u200F \u2764\uFE0F');
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.deepEqual((await fullHistory(alice, 'lobby')).map((m) => m.text), [ok.message.text]);

    expectError(await alice.ask('room:topic', { room: 'lobby', topic: 'evil\u202E' }), 'invalid_text', 'topic');
    expectError(await alice.ask('room:topic', { room: 'lobby', topic: 'two\nlines' }), 'invalid_text', 'topic');
    expectError(await alice.ask('room:create', { room: 'spoof', topic: '\u001b]0;x\u0007' }), 'invalid_text', 'create');
    await alice.ok('room:topic', { room: 'lobby', topic: 'Everyone \u{1F600}' });
  });

  it('/: refused demo names get no login; refused demo messages are neither relayed nor stored', T, async (t) => {
    const srv = await startChatd(FAST, { t });
    const carol = await chat(t, srv, 'carol');
    await carol.ok('room:join', { room: 'lobby' });
    const demo = async () => {
      const socket = socketFor(t, srv, '/', TRANSPORTS.websocket);
      const ev = {};
      for (const e of ['login', 'new message', 'chat message']) ev[e] = new Recorder(socket, e, e === 'chat message' ? 2 : 1, { exact: true });
      await connected(socket);
      return { socket, ev };
    };
    const a = await demo();
    const b = await demo();
    // Refused names are ignored: the next `add user` on the same socket is the first one.
    a.socket.emit('add user', 'al\u202Eice');
    a.socket.emit('add user', '\u200B\u200B');
    a.socket.emit('add user', 'esc\u001b[2J');
    a.socket.emit('add user', 'alice');
    assert.deepEqual(await a.ev.login.waitFor(), { numUsers: 1 });
    b.socket.emit('add user', 'bob');
    assert.deepEqual(await b.ev.login.waitFor(), { numUsers: 2 });

    a.socket.emit('new message', '\u202Egnp.exe');
    a.socket.emit('new message', '\u200B');
    a.socket.emit('new message', 'nul\u0000');
    a.socket.emit('new message', 'fine');
    assert.deepEqual(await b.ev['new message'].waitFor(), { username: 'alice', message: 'fine' });

    // The tutorial: a refused message is acknowledged (the client's queue moves on), not stored.
    const tut = socketFor(t, srv, '/', TRANSPORTS.websocket, { auth: { serverOffset: 1 } });
    await connected(tut);
    assert.equal(await tut.timeout(5000).emitWithAck('chat message', '\u202Eevil', 'c-1'), undefined);
    assert.equal(await tut.timeout(5000).emitWithAck('chat message', 'good', 'c-2'), undefined);
    assert.deepEqual((await fullHistory(carol, 'lobby')).map((m) => m.text), ['fine', 'good']);
    assert.deepEqual(b.ev['new message'].all.map((m) => m.message), ['fine', 'good']);
  });
});
