// Socket.IO mounted in an axum app (socketio/examples/axum-chat.rs: SocketIo::layer on an axum
// Router, served by axum::serve) with the official client over every transport mode: rooms and
// acks through the layer, JSON routes on the same port sharing the server's state, and the
// graceful shutdown on SIGTERM.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../helpers/server.mjs';
import { MODES, connectClient, next, nextDisconnect } from '../helpers/sio.mjs';

const T = { timeout: 20000 };

const ask = (socket, event, ...args) => socket.timeout(5000).emitWithAck(event, ...args);

async function getJson(server, path, init) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    ...init,
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

for (const mode of MODES) {
  describe(`axum-chat [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startServer('axum-chat'); });
    after(async () => { await server?.stop(); });

    it('rooms, acks and HTTP routes on one port, sharing state', T, async (t) => {
      const before = await getJson(server, '/api/stats');
      const [a, b] = await Promise.all([connectClient(t, server, mode), connectClient(t, server, mode)]);
      const room = `room-${mode.name}`;
      assert.deepEqual(await ask(a, 'join', room), { room, members: 1 });
      assert.deepEqual(await ask(b, 'join', room), { room, members: 2 });

      const got = next(b, 'chat');
      const ack = await ask(a, 'chat', { room, text: 'hi' });
      assert.equal(ack.n, before.messages + 1);
      assert.deepEqual(await got, [{ room, from: a.id, text: 'hi', n: ack.n }]);

      // The route sees what the Socket.IO handlers counted …
      assert.deepEqual(await getJson(server, '/api/stats'), { online: before.online + 2, messages: ack.n });
      // … and emits to the room through the same server.
      const heard = Promise.all([next(a, 'announcement'), next(b, 'announcement')]);
      const sent = await getJson(server, '/api/announce', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ room, text: 'from HTTP' }),
      });
      assert.deepEqual(sent, { sent: true });
      assert.deepEqual(await heard, [[{ text: 'from HTTP' }], [{ text: 'from HTTP' }]]);

      // Anything else is the router's 404.
      const res = await fetch(`http://127.0.0.1:${server.port}/nowhere`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 404);
    });
  });
}

describe('axum-chat shutdown', () => {
  it('SIGTERM tells every client (all transports), then axum::serve returns', T, async (t) => {
    const server = await startServer('axum-chat');
    t.after(() => server.stop());
    const clients = await Promise.all(MODES.map((mode) => connectClient(t, server, mode)));
    const gone = Promise.all(clients.map((socket) => nextDisconnect(socket, 10000)));
    server.proc.kill('SIGTERM');
    const reasons = await gone;
    // The stock client reports a server-side close as a transport close.
    assert.deepEqual(reasons.map((r) => r.reason), clients.map(() => 'transport close'));
    const exit = await server.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
