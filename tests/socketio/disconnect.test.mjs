// Disconnects and their reasons, as the client reports them and as the server's disconnect
// handler sees them (protocol-notes.md B.8, B.10). The fixture records every server-side reason;
// serverReason() asks for the one of a given socket id, waiting until it exists.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, Manager, startFixture, clientOpts, closeClient, connectClient, waitConnect,
  nextDisconnect, ask, serverReason, DEFAULT_WAIT_MS,
} from '../helpers/sio.mjs';

const T = { timeout: 20000 };

/** Resolves with the manager's next 'close' reason. */
function managerClosed(manager, ms = DEFAULT_WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`manager not closed within ${ms} ms`)), ms);
    manager.once('close', (reason) => { clearTimeout(timer); resolve(reason); });
  });
}

/** A manager with sockets on `/` and `/chat`, both connected. */
async function twoNamespaces(t, server, mode) {
  const manager = new Manager(`http://127.0.0.1:${server.port}`, clientOpts(server, mode));
  const main = manager.socket('/');
  const chat = manager.socket('/chat');
  t.after(() => { closeClient(main); closeClient(chat); manager._close(); });
  await Promise.all([waitConnect(main), waitConnect(chat)]);
  if (mode.expectUpgrade && manager.engine.transport.name !== 'websocket') {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no upgrade')), DEFAULT_WAIT_MS);
      manager.engine.once('upgrade', () => { clearTimeout(timer); resolve(); });
    });
  }
  return { manager, main, chat };
}

for (const mode of MODES) {
  describe(`sio disconnect [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    it('server socket.disconnect(): client "io server disconnect", no reconnection; server "server namespace disconnect"', T, async (t) => {
      const s = await connectClient(t, server, mode, { reconnection: true, reconnectionDelay: 50 });
      const id = s.id;
      const d = nextDisconnect(s);
      s.emit('disconnect-me');
      assert.equal((await d).reason, 'io server disconnect');
      assert.equal(s.active, false, 'the socket will not reconnect by itself');
      assert.equal(s.connected, false);
      assert.equal((await serverReason(t, server, id)).reason, 'server namespace disconnect');
    });

    it('server socket.disconnect() on one namespace leaves the others connected', T, async (t) => {
      const { main, chat } = await twoNamespaces(t, server, mode);
      const d = nextDisconnect(chat);
      chat.emit('disconnect-me');
      assert.equal((await d).reason, 'io server disconnect');
      assert.equal(main.connected, true);
      assert.equal(await ask(main, 'echo', 'alive'), 'alive');
    });

    it('client socket.disconnect(): client "io client disconnect"; server "client namespace disconnect"', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const id = s.id;
      const d = nextDisconnect(s);
      s.disconnect();
      assert.equal((await d).reason, 'io client disconnect');
      const r = await serverReason(t, server, id);
      assert.deepEqual(r, { id, nsp: '/', reason: 'client namespace disconnect' });
    });

    it('client leaving one namespace keeps the connection and the other namespace', T, async (t) => {
      const { manager, main, chat } = await twoNamespaces(t, server, mode);
      const chatId = chat.id;
      const engineId = manager.engine.id;
      chat.disconnect();
      assert.equal((await serverReason(t, server, chatId)).reason, 'client namespace disconnect');
      assert.equal(main.connected, true);
      assert.equal(manager.engine.id, engineId);
      assert.equal(await ask(main, 'echo', 'alive'), 'alive');
      // and the namespace can be joined again on the same connection
      chat.connect();
      await waitConnect(chat);
      assert.notEqual(chat.id, chatId);
      assert.equal(manager.engine.id, engineId);
    });

    it('client closes the transport (engine.close()): client "forced close"; server "transport close"', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const id = s.id;
      const d = nextDisconnect(s);
      s.io.engine.close();
      assert.equal((await d).reason, 'forced close');
      assert.equal((await serverReason(t, server, id)).reason, 'transport close');
    });

    it('server closes the transport without DISCONNECT: client "transport close" and reconnects; server "forced close"', T, async (t) => {
      const s = await connectClient(t, server, mode, {
        reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50, randomizationFactor: 0,
      });
      const id = s.id;
      const d = nextDisconnect(s);
      s.emit('close-transport');
      assert.equal((await d).reason, 'transport close');
      assert.equal(s.active, true, 'the Manager will reconnect');
      assert.equal((await serverReason(t, server, id)).reason, 'forced close');
      await waitConnect(s);
      assert.notEqual(s.id, id);
      assert.equal(await ask(s, 'echo', 'back'), 'back');
    });

    it('server disconnect_and_close(): every namespace "server namespace disconnect" on the server', T, async (t) => {
      const { manager, main, chat } = await twoNamespaces(t, server, mode);
      const ids = [main.id, chat.id];
      const closed = managerClosed(manager);
      main.emit('close-me');
      await closed;
      const [rMain, rChat] = await Promise.all(ids.map((id) => serverReason(t, server, id)));
      assert.deepEqual(rMain, { id: ids[0], nsp: '/', reason: 'server namespace disconnect' });
      assert.deepEqual(rChat, { id: ids[1], nsp: '/chat', reason: 'server namespace disconnect' });
    });

    it('server disconnect_and_close(): the client gets DISCONNECT for every namespace ("io server disconnect"), then the close', T, async (t) => {
      const { manager, main, chat } = await twoNamespaces(t, server, mode);
      const reasons = { main: [], chat: [] };
      main.on('disconnect', (r) => reasons.main.push(r));
      chat.on('disconnect', (r) => reasons.chat.push(r));
      const closed = managerClosed(manager);
      main.emit('close-me');
      await closed;
      assert.deepEqual(reasons, { main: ['io server disconnect'], chat: ['io server disconnect'] });
      assert.equal(main.active, false);
      assert.equal(chat.active, false);
    });
  });
}

describe('sio disconnect: ping timeout and maxPayload', () => {
  let server;
  before(async () => {
    server = await startFixture(['--ping-interval', '300', '--ping-timeout', '300', '--max-payload', '1000']);
  });
  after(async () => { await server?.stop(); });

  for (const mode of MODES.filter((m) => m.transports.includes('websocket'))) {
    it(`[${mode.name}] a client that stops reading gets "ping timeout" on the server`, T, async (t) => {
      const s = await connectClient(t, server, mode);
      const id = s.id;
      const ws = s.io.engine.transport.ws;
      assert.ok(ws?._socket, 'a Node ws WebSocket with its TCP socket');
      ws._socket.pause(); // the pings are never read, so never answered
      t.after(() => ws._socket.destroy());
      assert.equal((await serverReason(t, server, id)).reason, 'ping timeout');
    });

    it(`[${mode.name}] a WebSocket message over maxPayload: "transport error" on the server`, T, async (t) => {
      const s = await connectClient(t, server, mode);
      const id = s.id;
      const d = nextDisconnect(s);
      s.emit('echo', 'x'.repeat(5000));
      assert.equal((await d).reason, 'transport close');
      assert.equal((await serverReason(t, server, id)).reason, 'transport error');
    });
  }
});
