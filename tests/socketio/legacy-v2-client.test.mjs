// Old clients: the official socket.io-client 2.5.0 (Engine.IO v3 / Socket.IO v4, installed under
// the npm alias `socket.io-client-v2`) against the fixture server started with `--allow-eio3`
// (protocol-notes.md Part C). Over polling, websocket and polling → websocket upgrade: the
// implicit connection to `/`, events with JSON and binary both ways, acks both ways, a namespace
// with query auth, CONNECT_ERROR as a string, disconnects. Also: without the flag, the old client
// is refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import ioV2 from 'socket.io-client-v2';
import { startFixture, connectClient, ask, MODES, ID_RE, normalizeBinary, serverReason } from '../helpers/sio.mjs';
import { once, DEFAULT_WAIT_MS } from '../helpers/eio.mjs';

const T = { timeout: 20000 };

/** A v2 client socket for `nsp`; closed after the test. */
function makeV2(t, server, mode, { nsp = '/', ...opts } = {}) {
  const socket = ioV2(`http://127.0.0.1:${server.port}${nsp}`, {
    path: server.path,
    transports: mode.transports,
    forceNew: true,
    reconnection: false,
    ...opts,
  });
  t.after(() => {
    try { socket.disconnect(); } catch { /* ignore */ }
    try { socket.io.close(); } catch { /* ignore */ }
  });
  return socket;
}

/** A connected v2 client; in the upgrade mode it also waits for the upgrade. */
async function connectV2(t, server, mode, opts = {}) {
  const socket = makeV2(t, server, mode, opts);
  // The v2 manager creates its engine when it opens, on the next tick.
  const connected = once(socket, 'connect', DEFAULT_WAIT_MS, { failOn: ['error', 'connect_error'] });
  await connected;
  if (mode.expectUpgrade && socket.io.engine.transport.name !== 'websocket') {
    await once(socket.io.engine, 'upgrade', DEFAULT_WAIT_MS, { failOn: ['close', 'upgradeError'] });
  }
  return socket;
}

/** Emits with an ack (v2 style: callback last) and resolves with the ack's arguments. */
function askV2(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for '${event}'`)), DEFAULT_WAIT_MS);
    socket.emit(event, ...args, (...reply) => { clearTimeout(timer); resolve(reply); });
  });
}

describe('old clients refused without --allow-eio3', () => {
  let server;
  before(async () => { server = await startFixture(); });
  after(async () => { await server?.stop(); });

  it('a v2 client gets connect_error and never connects', T, async (t) => {
    const socket = makeV2(t, server, MODES[0]);
    const [err] = await once(socket, 'connect_error', DEFAULT_WAIT_MS, { failOn: ['connect'] });
    assert.ok(err);
    assert.equal(socket.connected, false);
  });
});

for (const mode of MODES) {
  describe(`socket.io-client 2.5.0 [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(['--allow-eio3']); });
    after(async () => { await server?.stop(); });

    it('connects to / at once; the socket id is the Engine.IO sid', T, async (t) => {
      const socket = await connectV2(t, server, mode);
      assert.match(socket.id, ID_RE);
      assert.equal(socket.id, socket.io.engine.id);
      const [me] = await askV2(socket, 'whoami');
      assert.equal(me.id, socket.id);
      assert.equal(me.clientId, socket.id);
      assert.equal(me.protocol, 4);
      assert.equal(me.nsp, '/');
      assert.equal(me.recovered, false);
      assert.deepEqual(me.auth, {});
      assert.deepEqual(me.rooms, [socket.id]);
      assert.equal(me.transport, mode.transports.at(-1));
      assert.equal(socket.io.engine.transport.name, mode.transports.at(-1));
    });

    it('JSON events and acks both ways', T, async (t) => {
      const socket = await connectV2(t, server, mode);
      const payload = { a: 1, s: 'héllo 🎉', list: [1, 'two', null, true] };
      assert.deepEqual(await askV2(socket, 'echo', payload, 42, 'x'), [payload, 42, 'x']);
      const back = once(socket, 'echo-back', DEFAULT_WAIT_MS, { failOn: ['disconnect'] });
      await askV2(socket, 'echo-emit', 'ping', { n: 1 });
      assert.deepEqual(await back, ['ping', { n: 1 }]);
      // The server asks, the client acknowledges.
      socket.on('question', (x, ack) => ack({ answer: x * 2 }));
      const [res] = await askV2(socket, 'server-ack', { event: 'question', timeoutMs: 3000 }, 21);
      assert.deepEqual(res, { ok: true, args: [{ answer: 42 }] });
    });

    it('binary events and acks both ways', T, async (t) => {
      const socket = await connectV2(t, server, mode);
      const bytes = Buffer.from([0, 1, 2, 254, 255]);
      const reply = await askV2(socket, 'echo', { file: bytes, name: 'f' }, Buffer.from('second'));
      assert.deepEqual(normalizeBinary(reply), [{ file: bytes, name: 'f' }, Buffer.from('second')]);
      const back = once(socket, 'echo-back', DEFAULT_WAIT_MS, { failOn: ['disconnect'] });
      await askV2(socket, 'echo-emit', bytes);
      assert.deepEqual(normalizeBinary(await back), [bytes]);
      socket.on('bin-question', (x, ack) => ack(Buffer.concat([Buffer.from(x), Buffer.from([9])])));
      const [res] = await askV2(socket, 'server-ack', { event: 'bin-question', timeoutMs: 3000 }, Buffer.from([7]));
      assert.deepEqual(normalizeBinary(res), { ok: true, args: [Buffer.from([7, 9])] });
    });

    it('a namespace with query auth: /auth accepts the token, the id is /nsp#sid', T, async (t) => {
      const socket = await connectV2(t, server, mode, { nsp: '/auth', query: { token: 'secret', x: 'a b' } });
      assert.equal(socket.id, `/auth#${socket.io.engine.id}`);
      const [me] = await askV2(socket, 'whoami');
      assert.equal(me.nsp, '/auth');
      assert.equal(me.clientId, socket.id);
      assert.equal(me.id, socket.io.engine.id);
      assert.deepEqual(me.auth, { token: 'secret', x: 'a b' });
      assert.deepEqual(me.rooms, [socket.id, socket.io.engine.id].sort());
    });

    it('CONNECT_ERROR is err.data, else the message string; Invalid namespace stays an object', T, async (t) => {
      const denied = makeV2(t, server, mode, { nsp: '/auth', query: { token: 'nope' } });
      const [data] = await once(denied, 'error', DEFAULT_WAIT_MS, { failOn: ['connect'] });
      assert.deepEqual(data, { content: 'x' });
      const plain = makeV2(t, server, mode, { nsp: '/plain' });
      const [message] = await once(plain, 'error', DEFAULT_WAIT_MS, { failOn: ['connect'] });
      assert.equal(message, 'nope');
      const unknown = makeV2(t, server, mode, { nsp: '/does-not-exist' });
      const [invalid] = await once(unknown, 'error', DEFAULT_WAIT_MS, { failOn: ['connect'] });
      assert.deepEqual(invalid, { message: 'Invalid namespace' });
    });

    it('a v4 client can reach an old client by the id it knows', T, async (t) => {
      const old = await connectV2(t, server, mode, { nsp: '/chat' });
      const modern = await connectClient(t, server, MODES[1], { nsp: '/chat' });
      const got = once(old, 'hi', DEFAULT_WAIT_MS, { failOn: ['disconnect'] });
      await ask(modern, 'io-emit', { to: old.id, event: 'hi' }, 'there');
      assert.deepEqual(await got, ['there']);
    });

    it('client disconnect reaches the server as client namespace disconnect', T, async (t) => {
      const socket = await connectV2(t, server, mode, { nsp: '/chat' });
      const id = socket.id;
      socket.disconnect();
      // Disconnect records carry the id the client knows: `/chat#<sid>`.
      const record = await serverReason(t, server, id);
      assert.equal(record.reason, 'client namespace disconnect');
      assert.equal(record.nsp, '/chat');
    });

    it('server disconnect: the client sees io server disconnect', T, async (t) => {
      const socket = await connectV2(t, server, mode);
      const gone = once(socket, 'disconnect', DEFAULT_WAIT_MS, { failOn: [] });
      socket.emit('disconnect-me');
      const [reason] = await gone;
      assert.equal(reason, 'io server disconnect');
    });
  });
}

describe('socket.io-client 2.5.0 heartbeat (the client pings)', () => {
  let server;
  before(async () => { server = await startFixture(['--allow-eio3', '--ping-interval', '300', '--ping-timeout', '200']); });
  after(async () => { await server?.stop(); });

  for (const mode of MODES) {
    it(`[${mode.name}] the server answers every ping; the session outlives pingInterval + pingTimeout`, T, async (t) => {
      const socket = await connectV2(t, server, mode);
      let pongs = 0;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${pongs} pongs`)), DEFAULT_WAIT_MS);
        socket.on('disconnect', (reason) => { clearTimeout(timer); reject(new Error(`disconnected: ${reason}`)); });
        socket.on('pong', () => {
          pongs += 1;
          if (pongs === 4) { clearTimeout(timer); resolve(); }
        });
      });
      assert.equal(socket.connected, true);
      assert.deepEqual(await askV2(socket, 'echo', 'still here'), ['still here']);
    });
  }
});
