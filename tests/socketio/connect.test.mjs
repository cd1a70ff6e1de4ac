// Socket.IO connection, auth, connect errors and namespaces with the official socket.io-client,
// over every transport mode (protocol-notes.md B.4).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, ID_RE, Manager, startFixture, clientOpts, closeClient, makeClient, connectClient,
  waitConnect, next, nextConnectError, ask,
} from '../helpers/sio.mjs';

const T = { timeout: 20000 };

for (const mode of MODES) {
  describe(`sio connect [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    it('connects; socket.id is 20 URL-safe chars, distinct from the Engine.IO id', T, async (t) => {
      const socket = await connectClient(t, server, mode);
      assert.equal(socket.connected, true);
      assert.match(socket.id, ID_RE);
      assert.match(socket.io.engine.id, ID_RE);
      assert.notEqual(socket.id, socket.io.engine.id);
      const me = await ask(socket, 'whoami');
      assert.equal(me.id, socket.id);
      assert.equal(me.nsp, '/');
      assert.equal(me.recovered, false);
      assert.deepEqual(me.rooms, [socket.id], 'a socket is in the room of its own id');
      assert.equal(me.transport, mode.transports.at(-1));
    });

    it('two clients get different socket ids', T, async (t) => {
      const [a, b] = await Promise.all([connectClient(t, server, mode), connectClient(t, server, mode)]);
      assert.notEqual(a.id, b.id);
    });

    it('auth is {} when the client sends none', T, async (t) => {
      const socket = await connectClient(t, server, mode);
      assert.deepEqual((await ask(socket, 'whoami')).auth, {});
    });

    it('the auth object round-trips', T, async (t) => {
      const auth = { token: 'abc', n: 1.5, nested: { list: [1, 'two', null, true] }, uni: 'héllo ✓ 😀' };
      const socket = await connectClient(t, server, mode, { auth });
      assert.deepEqual((await ask(socket, 'whoami')).auth, auth);
    });

    it('a middleware refusal gives connect_error with err.message and err.data', T, async (t) => {
      const socket = makeClient(t, server, mode, { nsp: '/auth', auth: { token: 'wrong' } });
      const err = await nextConnectError(socket);
      assert.equal(err.message, 'not authorized');
      assert.deepEqual(err.data, { content: 'x' });
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false, 'a refused socket does not retry by itself');
    });

    it('the middleware accepts the right token, and auth reaches the handler', T, async (t) => {
      const socket = await connectClient(t, server, mode, { nsp: '/auth', auth: { token: 'secret' } });
      const me = await ask(socket, 'whoami');
      assert.equal(me.nsp, '/auth');
      assert.deepEqual(me.auth, { token: 'secret' });
    });

    it('a refusal with a plain message has no err.data', T, async (t) => {
      const socket = makeClient(t, server, mode, { nsp: '/plain' });
      const err = await nextConnectError(socket);
      assert.equal(err.message, 'nope');
      assert.equal(err.data, undefined);
    });

    it('an unknown namespace gives "Invalid namespace"; the manager\'s other sockets stay connected', T, async (t) => {
      const manager = new Manager(`http://127.0.0.1:${server.port}`, clientOpts(server, mode));
      const main = manager.socket('/');
      t.after(() => { closeClient(main); manager._close(); });
      await waitConnect(main);
      const unknown = manager.socket('/does-not-exist');
      const err = await nextConnectError(unknown);
      assert.equal(err.message, 'Invalid namespace');
      assert.equal(main.connected, true);
      assert.equal(await ask(main, 'echo', 'still here'), 'still here');
      // and the same connection can still join another namespace
      const chat = manager.socket('/chat');
      await waitConnect(chat);
      assert.equal((await ask(chat, 'whoami')).nsp, '/chat');
      assert.equal(main.io.engine, chat.io.engine, 'multiplexed on one connection');
    });

    it('a static namespace: its own socket id, events on it stay on it', T, async (t) => {
      const manager = new Manager(`http://127.0.0.1:${server.port}`, clientOpts(server, mode));
      const main = manager.socket('/');
      const chat = manager.socket('/chat');
      t.after(() => { closeClient(main); closeClient(chat); manager._close(); });
      await Promise.all([waitConnect(main), waitConnect(chat)]);
      assert.notEqual(main.id, chat.id);
      assert.match(chat.id, ID_RE);
      const [meMain, meChat] = await Promise.all([ask(main, 'whoami'), ask(chat, 'whoami')]);
      assert.deepEqual([meMain.nsp, meMain.id], ['/', main.id]);
      assert.deepEqual([meChat.nsp, meChat.id], ['/chat', chat.id]);
      // a server emit on /chat reaches only the /chat socket
      let wrong = 0;
      main.on('echo-back', () => { wrong += 1; });
      const got = next(chat, 'echo-back');
      await ask(chat, 'echo-emit', 'on chat');
      assert.deepEqual(await got, ['on chat']);
      await ask(main, 'echo', 'fence'); // anything for `main` would have arrived before its ack
      assert.equal(wrong, 0);
    });

    it('a dynamic namespace is created on demand; its handler emits the namespace name', T, async (t) => {
      const socket = makeClient(t, server, mode, { nsp: '/dyn-abc' });
      const greeted = next(socket, 'ns');
      await waitConnect(socket);
      assert.deepEqual(await greeted, ['/dyn-abc']);
      const me = await ask(socket, 'whoami');
      assert.equal(me.nsp, '/dyn-abc');
      assert.equal(me.id, socket.id);
      // a second child of the same family
      const other = makeClient(t, server, mode, { nsp: '/dyn-xyz' });
      const greeted2 = next(other, 'ns');
      await waitConnect(other);
      assert.deepEqual(await greeted2, ['/dyn-xyz']);
    });

    it('a name the dynamic matcher refuses is an invalid namespace', T, async (t) => {
      const socket = makeClient(t, server, mode, { nsp: '/dyn-' });
      assert.equal((await nextConnectError(socket)).message, 'Invalid namespace');
    });
  });
}

describe('sio connect timeout', () => {
  let server;
  before(async () => { server = await startFixture(['--connect-timeout', '300']); });
  after(async () => { await server?.stop(); });

  for (const mode of MODES) {
    it(`[${mode.name}] a connection that joins no namespace is closed after connectTimeout`, T, async (t) => {
      const manager = new Manager(`http://127.0.0.1:${server.port}`, clientOpts(server, mode));
      t.after(() => manager._close());
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('manager did not open')), 5000);
        manager.once('open', () => { clearTimeout(timer); resolve(); });
      });
      const [reason] = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('connection not closed after connectTimeout')), 5000);
        manager.once('close', (...args) => { clearTimeout(timer); resolve(args); });
      });
      assert.equal(reason, 'transport close');
    });

    it(`[${mode.name}] a socket that joined in time is not closed`, T, async (t) => {
      const socket = await connectClient(t, server, mode);
      // longer than connectTimeout, measured by the server: it answers after 600 ms
      const r = await socket.timeout(5000).emitWithAck('server-ack', { event: 'no-listener', timeoutMs: 600 });
      assert.deepEqual(r, { error: 'operation has timed out' });
      assert.equal(socket.connected, true);
    });
  }
});
